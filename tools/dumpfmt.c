/*
 * dumpfmt.c — reader and writer of the db_dump/mdb_dump text format (see
 * dumpfmt.h for the format).
 *
 * Reader invariants:
 *  - Input is consumed line by line. A line that lies whole in the current
 *    input window (the memory buffer, or the FILE's read chunk) is used in
 *    place; one that spans chunks, or lacks its final newline, is assembled
 *    in `line`. Either way it stays valid only until the next line is read,
 *    so items are decoded into `item[]` before that.
 *  - No line may exceed the limit of what it can hold: a header line
 *    HEADER_LINE_MAX bytes, a key or value line one space plus the encoded
 *    size of the largest item allowed. So memory stays bounded by the limits
 *    whatever the input, and an over-long item fails before it is buffered.
 *  - After the first error the reader is dead: every call returns it again.
 */
#include "dumpfmt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define DUMPFMT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define DUMPFMT_PRINTF(f, a)
#endif

#define CHUNK           (64u * 1024u)
#define HEADER_LINE_MAX (64u * 1024u)
#define LINE_TOO_LONG   (-100) /* internal: next_line() hit its limit */

enum { ST_HEADER, ST_DATA, ST_DONE, ST_FAILED };

struct dumpfmt_reader {
  FILE *f;           /* NULL for memory input */
  const uint8_t *in; /* the input window: the memory buffer or `chunk` */
  size_t in_len, in_pos;
  uint8_t *chunk; /* FILE input: read buffer of CHUNK bytes */
  int in_eof;     /* the FILE is exhausted */
  uint8_t *line;  /* assembled lines */
  size_t line_cap;
  uint8_t *item[2]; /* decoded key [0] and value [1] */
  size_t item_cap[2];
  size_t max_item[2];
  int format, state, err;
  uint64_t lineno, consumed;
  char msg[320];
};

static const char hexdig[] = "0123456789abcdef";

static int hexval(uint8_t c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* ---- Errors -------------------------------------------------------------- */

DUMPFMT_PRINTF(3, 4)
static int fail(dumpfmt_reader *r, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->msg, sizeof r->msg, fmt, ap);
  va_end(ap);
  r->state = ST_FAILED;
  r->err = code;
  return code;
}

/* A short printable rendering of n bytes at p for messages: at most 40
 * bytes of input, non-printables as \xHH, "..." when cut. */
static const char *quote(const uint8_t *p, size_t n, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < n && i < 40 && o + 5 < cap; i++) {
    if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\') {
      out[o++] = (char)p[i];
    } else {
      out[o++] = '\\';
      out[o++] = 'x';
      out[o++] = hexdig[p[i] >> 4];
      out[o++] = hexdig[p[i] & 15];
    }
  }
  if (n > 40 && o + 4 < cap) {
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o] = '\0';
  return out;
}

/* How a single offending byte is named in messages. */
static const char *byte_name(uint8_t c, char out[16]) {
  if (c >= 0x20 && c < 0x7f)
    snprintf(out, 16, "'%c'", (char)c);
  else
    snprintf(out, 16, "byte 0x%02x", (unsigned)c);
  return out;
}

/* ---- Input --------------------------------------------------------------- */

static dumpfmt_reader *reader_new(size_t max_key, size_t max_value) {
  dumpfmt_reader *r = calloc(1, sizeof *r);
  if (r == NULL)
    return NULL;
  r->max_item[0] = max_key;
  r->max_item[1] = max_value;
  r->state = ST_HEADER;
  return r;
}

dumpfmt_reader *dumpfmt_reader_file(FILE *f, size_t max_key, size_t max_value) {
  dumpfmt_reader *r = reader_new(max_key, max_value);
  if (r == NULL)
    return NULL;
  r->chunk = malloc(CHUNK);
  if (r->chunk == NULL) {
    free(r);
    return NULL;
  }
  r->f = f;
  r->in = r->chunk;
  return r;
}

dumpfmt_reader *dumpfmt_reader_mem(const void *buf, size_t len, size_t max_key,
                                   size_t max_value) {
  dumpfmt_reader *r = reader_new(max_key, max_value);
  if (r == NULL)
    return NULL;
  r->in = len > 0 ? buf : (const uint8_t *)"";
  r->in_len = len;
  r->in_eof = 1;
  return r;
}

void dumpfmt_reader_free(dumpfmt_reader *r) {
  if (r == NULL)
    return;
  free(r->chunk);
  free(r->line);
  free(r->item[0]);
  free(r->item[1]);
  free(r);
}

/* Makes more input available: 1, 0 at the end of input, or DUMPFMT_EIO. */
static int refill(dumpfmt_reader *r) {
  size_t got;
  if (r->f == NULL || r->in_eof)
    return 0;
  got = fread(r->chunk, 1, CHUNK, r->f);
  if (got == 0) {
    if (ferror(r->f))
      return fail(r, DUMPFMT_EIO, "line %llu: reading the input: %s",
                  (unsigned long long)r->lineno + 1, strerror(errno));
    r->in_eof = 1;
    return 0;
  }
  r->in_len = got;
  r->in_pos = 0;
  return 1;
}

/* Grows *buf to hold at least need bytes. 0 or -1. */
static int reserve(uint8_t **buf, size_t *cap, size_t need) {
  size_t n;
  uint8_t *p;
  if (need <= *cap)
    return 0;
  n = *cap ? *cap : 256;
  while (n < need)
    n = n > SIZE_MAX / 2 ? need : n * 2;
  p = realloc(*buf, n);
  if (p == NULL)
    return -1;
  *buf = p;
  *cap = n;
  return 0;
}

/* Reads the next line, without its newline, into *p and *n. Returns 1, 0 at the
 * end of input, LINE_TOO_LONG (the line exceeds limit bytes; nothing is
 * consumed past the limit), or an error. */
static int next_line(dumpfmt_reader *r, size_t limit, const uint8_t **p,
                     size_t *n) {
  size_t have = 0;
  int assembled = 0;
  for (;;) {
    const uint8_t *s, *nl;
    size_t avail, take;
    if (r->in_pos == r->in_len) {
      int rc = refill(r);
      if (rc < 0)
        return rc;
      if (rc == 0) {
        if (!assembled)
          return 0;
        break; /* the last line lacks its newline */
      }
    }
    s = r->in + r->in_pos;
    avail = r->in_len - r->in_pos;
    nl = memchr(s, '\n', avail);
    take = nl != NULL ? (size_t)(nl - s) : avail;
    if (take > limit - have)
      return LINE_TOO_LONG;
    if (nl != NULL && !assembled) {
      /* The whole line is in the window: use it in place. */
      r->in_pos += take + 1;
      r->consumed += take + 1;
      r->lineno++;
      *p = s;
      *n = take;
      return 1;
    }
    if (reserve(&r->line, &r->line_cap, have + take + 1) != 0)
      return fail(r, DUMPFMT_ENOMEM, "line %llu: out of memory",
                  (unsigned long long)r->lineno + 1);
    memcpy(r->line + have, s, take);
    have += take;
    assembled = 1;
    r->in_pos += take + (nl != NULL);
    r->consumed += take + (nl != NULL);
    if (nl != NULL)
      break;
  }
  r->lineno++;
  *p = r->line;
  *n = have;
  return 1;
}

static int equals(const uint8_t *p, size_t n, const char *s) {
  size_t len = strlen(s);
  return n == len && memcmp(p, s, len) == 0;
}

/* ---- Header -------------------------------------------------------------- */

int dumpfmt_read_header(dumpfmt_reader *r, dumpfmt_header *h) {
  dumpfmt_header t;
  int have_version = 0;
  char q[200];

  if (r->state == ST_FAILED)
    return r->err;
  if (r->state != ST_HEADER)
    return fail(r, DUMPFMT_ESTATE, "the header was read already");
  memset(&t, 0, sizeof t);
  t.format = DUMPFMT_BYTEVALUE;
  for (;;) {
    const uint8_t *p, *eq, *val;
    size_t n, nlen, vlen;
    int rc = next_line(r, HEADER_LINE_MAX, &p, &n);
    unsigned long long ln = (unsigned long long)r->lineno;
    if (rc == LINE_TOO_LONG)
      return fail(r, DUMPFMT_ESYNTAX,
                  "line %llu: header line longer than %u "
                  "bytes",
                  ln + 1, HEADER_LINE_MAX);
    if (rc < 0)
      return rc;
    if (rc == 0) {
      if (ln == 0)
        return fail(r, DUMPFMT_ESYNTAX, "empty input: no dump header");
      return fail(r, DUMPFMT_ESYNTAX,
                  "line %llu: the input ends in the header (no HEADER=END)",
                  ln);
    }
    if (n > 0 && p[n - 1] == '\r')
      return fail(r, DUMPFMT_ESYNTAX,
                  "line %llu: carriage return at the end of the line "
                  "(CRLF line ends are not allowed)",
                  ln);
    if (equals(p, n, "HEADER=END"))
      break;
    if (n == 0)
      return fail(r, DUMPFMT_ESYNTAX, "line %llu: empty line in the header",
                  ln);
    if (p[0] == ' ')
      return fail(r, DUMPFMT_ESYNTAX,
                  "line %llu: data line in the header (no HEADER=END before "
                  "it)",
                  ln);
    eq = memchr(p, '=', n);
    if (eq == NULL || eq == p)
      return fail(r, DUMPFMT_ESYNTAX,
                  "line %llu: expected NAME=VALUE in the header, got \"%s\"",
                  ln, quote(p, n, q, sizeof q));
    nlen = (size_t)(eq - p);
    val = eq + 1;
    vlen = n - nlen - 1;
    if (equals(p, nlen, "VERSION")) {
      if (!equals(val, vlen, "3"))
        return fail(r, DUMPFMT_ESYNTAX,
                    "line %llu: unsupported dump version \"%s\" (expected 3)",
                    ln, quote(val, vlen, q, sizeof q));
      have_version = 1;
    } else if (equals(p, nlen, "format")) {
      if (equals(val, vlen, "bytevalue"))
        t.format = DUMPFMT_BYTEVALUE;
      else if (equals(val, vlen, "print"))
        t.format = DUMPFMT_PRINT;
      else
        return fail(r, DUMPFMT_ESYNTAX,
                    "line %llu: unknown format \"%s\" (expected bytevalue or "
                    "print)",
                    ln, quote(val, vlen, q, sizeof q));
    } else if (equals(p, nlen, "type")) {
      size_t c = vlen < sizeof t.type - 1 ? vlen : sizeof t.type - 1;
      memcpy(t.type, val, c);
      t.type[c] = '\0';
    } else if (equals(p, nlen, "duplicates")) {
      t.duplicates = !equals(val, vlen, "0");
    } else if (equals(p, nlen, "keys")) {
      if (equals(val, vlen, "0"))
        return fail(r, DUMPFMT_ESYNTAX,
                    "line %llu: the dump holds values without keys (keys=0)",
                    ln);
    }
    /* Any other keyword (mapsize=, database=, db_pagesize=, ...) describes
     * the source database only. */
  }
  if (!have_version)
    return fail(r, DUMPFMT_ESYNTAX,
                "line %llu: the header has no VERSION=3 line",
                (unsigned long long)r->lineno);
  t.version = 3;
  t.lines = r->lineno;
  r->format = t.format;
  r->state = ST_DATA;
  *h = t;
  return 0;
}

/* ---- Data ---------------------------------------------------------------- */

static size_t line_limit(const dumpfmt_reader *r, int which) {
  size_t enc =
      r->format == DUMPFMT_PRINT
          ? dumpfmt_encoded_max(r->max_item[which])
          : (r->max_item[which] > SIZE_MAX / 2 ? SIZE_MAX
                                               : r->max_item[which] * 2);
  return enc == SIZE_MAX ? SIZE_MAX : enc + 1;
}

/* Decodes the item line p/n (p[0] is the space) into item[which]. */
static int decode_item(dumpfmt_reader *r, int which, const uint8_t *p, size_t n,
                       const uint8_t **out, size_t *outlen) {
  static const char *const what[2] = {"key", "value"};
  unsigned long long ln = (unsigned long long)r->lineno;
  const uint8_t *s = p + 1;
  size_t len = n - 1, o = 0;
  uint8_t *d;
  char bn[16];

  if (reserve(&r->item[which], &r->item_cap[which], len + 1) != 0)
    return fail(r, DUMPFMT_ENOMEM, "line %llu: out of memory", ln);
  d = r->item[which];
  if (r->format == DUMPFMT_BYTEVALUE) {
    for (size_t i = 0; i < len; i++) {
      if (hexval(s[i]) < 0) {
        if (s[i] == '\r' && i + 1 == len)
          return fail(r, DUMPFMT_ESYNTAX,
                      "line %llu: carriage return at the end of the line "
                      "(CRLF line ends are not allowed)",
                      ln);
        return fail(r, DUMPFMT_ESYNTAX,
                    "line %llu, column %zu: %s is not a hex digit", ln, i + 2,
                    byte_name(s[i], bn));
      }
    }
    if (len % 2 != 0)
      return fail(r, DUMPFMT_ESYNTAX,
                  "line %llu: odd number of hex digits (%zu) in a %s", ln, len,
                  what[which]);
    if (len / 2 > r->max_item[which])
      return fail(r, DUMPFMT_ETOOBIG,
                  "line %llu: %s of %zu bytes exceeds the limit of %zu", ln,
                  what[which], len / 2, r->max_item[which]);
    for (size_t i = 0; i < len; i += 2)
      d[o++] = (uint8_t)(hexval(s[i]) << 4 | hexval(s[i + 1]));
  } else {
    for (size_t i = 0; i < len;) {
      if (s[i] != '\\') {
        d[o++] = s[i++];
      } else if (i + 1 < len && s[i + 1] == '\\') {
        d[o++] = '\\';
        i += 2;
      } else if (i + 2 < len && hexval(s[i + 1]) >= 0 &&
                 hexval(s[i + 2]) >= 0) {
        d[o++] = (uint8_t)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
        i += 3;
      } else {
        return fail(r, DUMPFMT_ESYNTAX,
                    "line %llu, column %zu: bad escape (a backslash must be "
                    "followed by a backslash or two hex digits; mdb_dump -p "
                    "before LMDB 0.9.25 leaves backslashes unescaped: dump "
                    "without -p)",
                    ln, i + 2);
      }
    }
    if (o > r->max_item[which])
      return fail(r, DUMPFMT_ETOOBIG,
                  "line %llu: %s of %zu bytes exceeds the limit of %zu", ln,
                  what[which], o, r->max_item[which]);
  }
  *out = d;
  *outlen = o;
  return 0;
}

/* After DATA=END: the input must end (blank lines aside). */
static int check_end(dumpfmt_reader *r) {
  for (;;) {
    const uint8_t *p;
    size_t n;
    int rc = next_line(r, HEADER_LINE_MAX, &p, &n);
    if (rc == 0) {
      r->state = ST_DONE;
      return 0;
    }
    if (rc == LINE_TOO_LONG)
      return fail(r, DUMPFMT_ESYNTAX,
                  "line %llu: unexpected data after "
                  "DATA=END",
                  (unsigned long long)r->lineno + 1);
    if (rc < 0)
      return rc;
    if (n == 0)
      continue;
    if (n >= 8 && memcmp(p, "VERSION=", 8) == 0)
      return fail(r, DUMPFMT_ESYNTAX,
                  "line %llu: a second database follows DATA=END (mapkv "
                  "loads one database; dump them one at a time)",
                  (unsigned long long)r->lineno);
    return fail(r, DUMPFMT_ESYNTAX, "line %llu: unexpected data after DATA=END",
                (unsigned long long)r->lineno);
  }
}

/* Reads the key (which 0) or value (1) line of a pair. Returns 0 with the
 * item, 1 for DATA=END in key position, or an error. */
static int read_item(dumpfmt_reader *r, int which, const uint8_t **out,
                     size_t *outlen) {
  static const char *const what[2] = {"key", "value"};
  const uint8_t *p;
  size_t n;
  char q[200];
  int rc = next_line(r, line_limit(r, which), &p, &n);
  unsigned long long ln = (unsigned long long)r->lineno;

  if (rc == LINE_TOO_LONG)
    return fail(r, DUMPFMT_ETOOBIG,
                "line %llu: %s longer than the limit of "
                "%zu bytes",
                ln + 1, what[which], r->max_item[which]);
  if (rc < 0)
    return rc;
  if (rc == 0) {
    if (which == 1)
      return fail(r, DUMPFMT_ESYNTAX,
                  "line %llu: the input ends after a key, without its value",
                  ln);
    return fail(r, DUMPFMT_ESYNTAX,
                "line %llu: the input ends without DATA=END (truncated?)", ln);
  }
  if (n > 0 && p[0] == ' ')
    return decode_item(r, which, p, n, out, outlen);
  if (equals(p, n, "DATA=END")) {
    if (which == 1)
      return fail(r, DUMPFMT_ESYNTAX,
                  "line %llu: DATA=END after a key, without its value", ln);
    return 1;
  }
  if (n == 0)
    return fail(r, DUMPFMT_ESYNTAX,
                "line %llu: empty line (an empty %s is a line holding one "
                "space)",
                ln, what[which]);
  return fail(r, DUMPFMT_ESYNTAX,
              "line %llu: expected a %s line (starting with a space)%s, got "
              "\"%s\"",
              ln, what[which], which == 0 ? " or DATA=END" : "",
              quote(p, n, q, sizeof q));
}

int dumpfmt_read_record(dumpfmt_reader *r, const uint8_t **key, size_t *klen,
                        const uint8_t **val, size_t *vlen) {
  const uint8_t *k, *v;
  size_t kn, vn;
  int rc;

  if (r->state == ST_FAILED)
    return r->err;
  if (r->state == ST_DONE)
    return 0;
  if (r->state != ST_DATA)
    return fail(r, DUMPFMT_ESTATE, "the header must be read first");
  rc = read_item(r, 0, &k, &kn);
  if (rc == 1)
    return check_end(r);
  if (rc != 0)
    return rc;
  if ((rc = read_item(r, 1, &v, &vn)) != 0)
    return rc;
  *key = k;
  *klen = kn;
  *val = v;
  *vlen = vn;
  return 1;
}

const char *dumpfmt_errmsg(const dumpfmt_reader *r) { return r->msg; }

uint64_t dumpfmt_line(const dumpfmt_reader *r) { return r->lineno; }

uint64_t dumpfmt_consumed(const dumpfmt_reader *r) { return r->consumed; }

/* ---- Writing ------------------------------------------------------------- */

size_t dumpfmt_encoded_max(size_t n) {
  return n > SIZE_MAX / 3 ? SIZE_MAX : n * 3;
}

size_t dumpfmt_encode(int format, const void *p, size_t n, char *out) {
  const uint8_t *s = p;
  size_t o = 0;
  if (format == DUMPFMT_PRINT) {
    for (size_t i = 0; i < n; i++) {
      uint8_t c = s[i];
      if (c == '\\') {
        out[o++] = '\\';
        out[o++] = '\\';
      } else if (c >= 0x20 && c < 0x7f) {
        out[o++] = (char)c;
      } else {
        out[o++] = '\\';
        out[o++] = hexdig[c >> 4];
        out[o++] = hexdig[c & 15];
      }
    }
  } else {
    for (size_t i = 0; i < n; i++) {
      out[o++] = hexdig[s[i] >> 4];
      out[o++] = hexdig[s[i] & 15];
    }
  }
  return o;
}

int dumpfmt_hex_decode(const char *s, size_t n, uint8_t *out, size_t *outlen,
                       size_t *bad) {
  for (size_t i = 0; i < n; i++) {
    if (hexval((uint8_t)s[i]) < 0) {
      if (bad != NULL)
        *bad = i;
      return -1;
    }
  }
  if (n % 2 != 0) {
    if (bad != NULL)
      *bad = n;
    return -1;
  }
  for (size_t i = 0; i < n; i += 2)
    out[i / 2] =
        (uint8_t)(hexval((uint8_t)s[i]) << 4 | hexval((uint8_t)s[i + 1]));
  *outlen = n / 2;
  return 0;
}

static int put(FILE *f, const char *s, size_t n) {
  return fwrite(s, 1, n, f) == n ? 0 : -1;
}

int dumpfmt_write_header(FILE *f, int format, uint64_t mapsize) {
  if (fprintf(f, "VERSION=3\nformat=%s\ntype=btree\n",
              format == DUMPFMT_PRINT ? "print" : "bytevalue") < 0)
    return -1;
  if (mapsize != 0 &&
      fprintf(f, "mapsize=%llu\n", (unsigned long long)mapsize) < 0)
    return -1;
  return put(f, "HEADER=END\n", 11);
}

int dumpfmt_write_item(FILE *f, int format, const void *p, size_t n) {
  enum { STEP = 1024 };
  char buf[3 * STEP + 2];
  const uint8_t *s = p;
  size_t o = 0;
  buf[o++] = ' ';
  do {
    size_t take = n < STEP ? n : STEP;
    if (take > 0) {
      o += dumpfmt_encode(format, s, take, buf + o);
      s += take;
      n -= take;
    }
    if (n == 0)
      buf[o++] = '\n';
    if (put(f, buf, o) != 0)
      return -1;
    o = 0;
  } while (n > 0);
  return 0;
}

int dumpfmt_write_end(FILE *f) { return put(f, "DATA=END\n", 9); }
