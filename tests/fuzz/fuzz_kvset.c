/* fuzz_kvset.c — see fuzz_kvset.h. */
#include "fuzz_kvset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

static uint8_t *dup_bytes(const void *p, size_t n) {
  uint8_t *d = malloc(n > 0 ? n : 1);
  if (d == NULL)
    FUZZ_FAIL("out of memory");
  if (n > 0)
    memcpy(d, p, n);
  return d;
}

int kv_keycmp(const void *a, size_t an, const void *b, size_t bn) {
  size_t m = an < bn ? an : bn;
  int c = m > 0 ? memcmp(a, b, m) : 0;
  if (c != 0)
    return c;
  return an < bn ? -1 : an > bn;
}

static int entry_cmp(const void *x, const void *y) {
  const kv *a = x, *b = y;
  return kv_keycmp(a->k, a->kn, b->k, b->kn);
}

void kvset_add(kvset *s, const void *k, size_t kn, const void *v, size_t vn) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 16;
    kv *e = realloc(s->e, cap * sizeof *e);
    if (e == NULL)
      FUZZ_FAIL("out of memory");
    s->e = e;
    s->cap = cap;
  }
  s->e[s->n].k = dup_bytes(k, kn);
  s->e[s->n].kn = kn;
  s->e[s->n].v = dup_bytes(v, vn);
  s->e[s->n].vn = vn;
  s->n++;
}

/* Index of the first entry not less than key. */
static size_t lower_bound(const kvset *s, const void *k, size_t kn) {
  size_t lo = 0, hi = s->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (kv_keycmp(s->e[mid].k, s->e[mid].kn, k, kn) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

kv *kvset_find(const kvset *s, const void *k, size_t kn) {
  size_t i = lower_bound(s, k, kn);
  if (i < s->n && kv_keycmp(s->e[i].k, s->e[i].kn, k, kn) == 0)
    return &s->e[i];
  return NULL;
}

void kvset_put(kvset *s, const void *k, size_t kn, const void *v, size_t vn) {
  size_t i = lower_bound(s, k, kn);
  kv tmp;
  if (i < s->n && kv_keycmp(s->e[i].k, s->e[i].kn, k, kn) == 0) {
    free(s->e[i].v);
    s->e[i].v = dup_bytes(v, vn);
    s->e[i].vn = vn;
    return;
  }
  kvset_add(s, k, kn, v, vn);
  tmp = s->e[s->n - 1];
  memmove(&s->e[i + 1], &s->e[i], (s->n - 1 - i) * sizeof tmp);
  s->e[i] = tmp;
}

int kvset_del(kvset *s, const void *k, size_t kn) {
  size_t i = lower_bound(s, k, kn);
  if (i >= s->n || kv_keycmp(s->e[i].k, s->e[i].kn, k, kn) != 0)
    return 0;
  free(s->e[i].k);
  free(s->e[i].v);
  memmove(&s->e[i], &s->e[i + 1], (s->n - 1 - i) * sizeof s->e[0]);
  s->n--;
  return 1;
}

int kvset_sort(kvset *s) {
  if (s->n > 1)
    qsort(s->e, s->n, sizeof s->e[0], entry_cmp);
  for (size_t i = 1; i < s->n; i++)
    if (entry_cmp(&s->e[i - 1], &s->e[i]) == 0)
      return -1;
  return 0;
}

int kvset_equal(const kvset *a, const kvset *b) {
  if (a->n != b->n)
    return 0;
  for (size_t i = 0; i < a->n; i++) {
    if (a->e[i].kn != b->e[i].kn || a->e[i].vn != b->e[i].vn ||
        (a->e[i].kn > 0 && memcmp(a->e[i].k, b->e[i].k, a->e[i].kn) != 0) ||
        (a->e[i].vn > 0 && memcmp(a->e[i].v, b->e[i].v, a->e[i].vn) != 0))
      return 0;
  }
  return 1;
}

void kvset_copy(kvset *dst, const kvset *src) {
  kvset_clear(dst);
  for (size_t i = 0; i < src->n; i++)
    kvset_add(dst, src->e[i].k, src->e[i].kn, src->e[i].v, src->e[i].vn);
}

void kvset_clear(kvset *s) {
  for (size_t i = 0; i < s->n; i++) {
    free(s->e[i].k);
    free(s->e[i].v);
  }
  s->n = 0;
}

void kvset_free(kvset *s) {
  kvset_clear(s);
  free(s->e);
  s->e = NULL;
  s->cap = 0;
}

static void print_bytes(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n && i < 32; i++)
    fprintf(stderr, "%02x", p[i]);
  if (n > 32)
    fprintf(stderr, "...");
}

static void print_entry(const char *tag, const kv *e) {
  fprintf(stderr, "  %s: key[%zu] ", tag, e->kn);
  print_bytes(e->k, e->kn);
  fprintf(stderr, " value[%zu] ", e->vn);
  print_bytes(e->v, e->vn);
  fprintf(stderr, "\n");
}

void kvset_diff(const char *an, const kvset *a, const char *bn,
                const kvset *b) {
  size_t i = 0, j = 0, shown = 0;
  fprintf(stderr, "%s has %zu keys, %s has %zu\n", an, a->n, bn, b->n);
  while ((i < a->n || j < b->n) && shown < 20) {
    int c = i >= a->n ? 1
            : j >= b->n
                ? -1
                : kv_keycmp(a->e[i].k, a->e[i].kn, b->e[j].k, b->e[j].kn);
    if (c < 0) {
      print_entry(an, &a->e[i++]);
      shown++;
    } else if (c > 0) {
      print_entry(bn, &b->e[j++]);
      shown++;
    } else {
      if (a->e[i].vn != b->e[j].vn ||
          (a->e[i].vn > 0 && memcmp(a->e[i].v, b->e[j].v, a->e[i].vn) != 0)) {
        print_entry(an, &a->e[i]);
        print_entry(bn, &b->e[j]);
        shown++;
      }
      i++;
      j++;
    }
  }
}
