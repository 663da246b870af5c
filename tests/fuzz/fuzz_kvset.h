/*
 * fuzz_kvset.h — a set of key/value copies (what a cursor walk saw, or a
 * model of a store), sorted by key for comparison and lookup.
 */
#ifndef MAPKV_FUZZ_KVSET_H
#define MAPKV_FUZZ_KVSET_H

#include <stddef.h>
#include <stdint.h>

typedef struct kv {
  uint8_t *k, *v;
  size_t kn, vn;
} kv;

typedef struct kvset {
  kv *e;
  size_t n, cap;
} kvset;

/* Appends a copy (no check for duplicates; see kvset_sort()). */
void kvset_add(kvset *s, const void *k, size_t kn, const void *v, size_t vn);
/* Sets key to value (replacing), keeping the set sorted if it was. */
void kvset_put(kvset *s, const void *k, size_t kn, const void *v, size_t vn);
/* Removes key; 1 if it was there. */
int kvset_del(kvset *s, const void *k, size_t kn);
/* Sorts by key; returns 0, or -1 if a key occurs twice. */
int kvset_sort(kvset *s);
/* The entry of key in a sorted set, or NULL. */
kv *kvset_find(const kvset *s, const void *k, size_t kn);
/* 1 if both sorted sets hold the same keys with the same values. */
int kvset_equal(const kvset *a, const kvset *b);
/* A deep copy. */
void kvset_copy(kvset *dst, const kvset *src);
void kvset_clear(kvset *s);
void kvset_free(kvset *s);
/* Key order: memcmp, then length. */
int kv_keycmp(const void *a, size_t an, const void *b, size_t bn);
/* Prints the differences of two sorted sets to stderr (for failures). */
void kvset_diff(const char *an, const kvset *a, const char *bn, const kvset *b);

#endif
