/*
 * mapkv_cli.c — the helpers the mapkv tool's commands share: option
 * parsing with uniform help and usage errors, messages, command-line bytes,
 * opening stores with the tool's options, and signal catching.
 */
#include "mapkv_cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "dumpfmt.h"

volatile sig_atomic_t cli_signal;

/* ---- Command line -------------------------------------------------------- */

void cli_help(const cli_cmd *cmd) {
  printf("usage: mapkv %s %s\n\n%s", cmd->name, cmd->args, cmd->help);
}

int cli_usage(const cli_cmd *cmd, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "mapkv %s: ", cmd->name);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nusage: mapkv %s %s\n", cmd->name, cmd->args);
  return CLI_USAGE;
}

int cli_getopt(const cli_cmd *cmd, int argc, char **argv, const char *optstring,
               const struct option *longopts, int *exit_code) {
  char os[64];
  int ch;
  /* A leading ':' makes a missing argument ':' rather than '?'. */
  snprintf(os, sizeof os, ":%s", optstring);
  opterr = 0;
  ch = getopt_long(argc, argv, os, longopts, NULL);
  switch (ch) {
  case 'h':
    cli_help(cmd);
    *exit_code = CLI_OK;
    return '?';
  case ':':
    *exit_code =
        cli_usage(cmd, "option %s needs an argument", argv[optind - 1]);
    return '?';
  case '?':
    if (strncmp(argv[optind - 1], "--", 2) == 0)
      *exit_code = cli_usage(cmd, "bad option %s", argv[optind - 1]);
    else
      *exit_code = cli_usage(cmd, "unknown option -%c", optopt);
    return '?';
  default:
    return ch;
  }
}

int cli_operands(const cli_cmd *cmd, int argc, char **argv, int want,
                 const char *names) {
  int have = argc - optind;
  if (have < want)
    return cli_usage(cmd, "missing operand%s (expected %s)",
                     want - have > 1 ? "s" : "", names);
  if (have > want)
    return cli_usage(cmd, "unexpected operand \"%s\"", argv[optind + want]);
  return 0;
}

int cli_arg_bytes(const cli_cmd *cmd, const char *arg, int hex,
                  const char *what, const uint8_t **p, size_t *n,
                  uint8_t **buf) {
  size_t len = strlen(arg), bad;
  *buf = NULL;
  if (!hex) {
    *p = (const uint8_t *)arg;
    *n = len;
    return 0;
  }
  *buf = malloc(len / 2 + 1);
  if (*buf == NULL)
    return cli_fail("out of memory");
  if (dumpfmt_hex_decode(arg, len, *buf, n, &bad) != 0) {
    free(*buf);
    *buf = NULL;
    if (bad == len)
      return cli_usage(cmd, "%s: odd number of hex digits", what);
    return cli_usage(cmd, "%s: not a hex string (character %zu is '%c')", what,
                     bad + 1, arg[bad]);
  }
  *p = *buf;
  return 0;
}

int cli_parse_wait(const cli_cmd *cmd, const char *arg, uint32_t *ms) {
  const char *p = arg;
  uint64_t whole = 0, frac = 0, scale = 1;
  int digits = 0;
  /* By hand rather than strtod(): no locale, no exponents, no "inf". */
  for (; *p >= '0' && *p <= '9'; p++, digits++) {
    whole = whole * 10 + (uint64_t)(*p - '0');
    if (whole > UINT32_MAX / 1000u)
      return cli_usage(cmd, "--wait %s: more than %u seconds", arg,
                       UINT32_MAX / 1000u);
  }
  if (*p == '.')
    for (p++; *p >= '0' && *p <= '9'; p++, digits++)
      if (scale < 1000000000u) {
        frac = frac * 10 + (uint64_t)(*p - '0');
        scale *= 10;
      }
  if (digits == 0 || *p != '\0')
    return cli_usage(cmd, "--wait %s: not a number of seconds", arg);
  whole = whole * 1000u + (frac * 1000u + scale - 1) / scale;
  *ms = whole > UINT32_MAX ? UINT32_MAX : (uint32_t)whole;
  return 0;
}

/* ---- Messages ------------------------------------------------------------ */

int cli_fail(const char *fmt, ...) {
  va_list ap;
  fputs("mapkv: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return CLI_FAIL;
}

void cli_warn(const char *fmt, ...) {
  va_list ap;
  fputs("mapkv: warning: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

int cli_lib_fail(int rc, const char *context) {
  const char *msg = mapkv_errmsg();
  if (msg == NULL || *msg == '\0')
    msg = mapkv_strerror(rc);
  if (context != NULL && strstr(msg, context) == NULL)
    cli_fail("%s: %s", context, msg);
  else
    cli_fail("%s", msg);
  return rc == MAPKV_NOTFOUND ? CLI_NOTFOUND : CLI_FAIL;
}

/* ---- Stores -------------------------------------------------------------- */

int cli_open_wait(const char *path, unsigned flags, int sync_mode,
                  uint32_t wait_ms, mapkv_t **db) {
  mapkv_options o;
  int rc;
  mapkv_options_init(&o);
  o.flags = flags;
  o.sync_mode = sync_mode;
  o.max_key_size = MAPKV_KEY_MAX;
  o.max_value_size = MAPKV_VALUE_MAX;
  o.lock_timeout_ms = wait_ms;
  rc = mapkv_open(path, &o, db);
  if (rc == MAPKV_ELOCKED && wait_ms == 0 && !(flags & MAPKV_RDONLY)) {
    cli_fail("%s (--wait SECONDS waits for it to close)", mapkv_errmsg());
    return CLI_FAIL;
  }
  if (rc != 0)
    return cli_lib_fail(rc, path); /* the path is named once */
  return 0;
}

int cli_open(const char *path, unsigned flags, int sync_mode, mapkv_t **db) {
  return cli_open_wait(path, flags, sync_mode, 0, db);
}

int cli_close(mapkv_t *db) {
  int rc = mapkv_close(db);
  if (rc != 0)
    return cli_lib_fail(rc, "closing the store");
  return 0;
}

/* ---- Signals ------------------------------------------------------------- */

static void on_signal(int sig) { cli_signal = sig; }

void cli_catch_signals(int pipe_too) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: blocked reads and writes return */
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  if (pipe_too)
    sigaction(SIGPIPE, &sa, NULL);
}

/* ---- bulk writer --------------------------------------------------------- */

#define BULK_RECORDS 10000
#define BULK_BYTES   (64u << 20)

void cli_bulk_init(cli_bulk *b, mapkv_t *db) {
  memset(b, 0, sizeof *b);
  b->db = db;
}

/* Commits the pending puts [from, from + n) of buf (at byte offset at) as
 * one batch; when they do not fit, as two halves, recursively. *next
 * receives the byte offset after them. Stops at the first put that does
 * not fit on its own. */
static int commit_range(cli_bulk *b, size_t at, size_t n, size_t *next) {
  mapkv_batch_t *batch;
  size_t pos = at;
  int rc;
  if ((rc = mapkv_batch_begin(b->db, &batch)) != 0)
    return rc;
  for (size_t i = 0; i < n; i++) {
    uint32_t kl, vl;
    memcpy(&kl, b->buf + pos, 4);
    memcpy(&vl, b->buf + pos + 4, 4);
    rc =
        mapkv_batch_put(batch, b->buf + pos + 8, kl, b->buf + pos + 8 + kl, vl);
    if (rc != 0) {
      mapkv_batch_abort(batch);
      return rc;
    }
    pos += 8 + (size_t)kl + vl;
  }
  rc = mapkv_batch_commit(batch); /* frees the batch either way */
  if (rc == 0) {
    b->committed += n;
    *next = pos;
    return 0;
  }
  if (n > 1 && (rc == -ENOSPC || rc == MAPKV_EFULL || rc == -EDQUOT ||
                rc == -EFBIG || rc == MAPKV_ENOMEM)) {
    size_t mid;
    if ((rc = commit_range(b, at, n / 2, &mid)) != 0)
      return rc;
    return commit_range(b, mid, n - n / 2, next);
  }
  return rc;
}

static int bulk_commit(cli_bulk *b) {
  size_t next = 0;
  int rc = b->records > 0 ? commit_range(b, 0, b->records, &next) : 0;
  b->records = b->used = 0;
  return rc;
}

int cli_bulk_put(cli_bulk *b, const void *k, size_t klen, const void *v,
                 size_t vlen) {
  size_t need = 8 + klen + vlen;
  uint32_t kl = (uint32_t)klen, vl = (uint32_t)vlen;
  if (b->cap - b->used < need) {
    size_t cap = b->cap ? b->cap : 1u << 16;
    uint8_t *p;
    while (cap - b->used < need)
      cap *= 2;
    if ((p = realloc(b->buf, cap)) == NULL)
      return MAPKV_ENOMEM;
    b->buf = p;
    b->cap = cap;
  }
  memcpy(b->buf + b->used, &kl, 4);
  memcpy(b->buf + b->used + 4, &vl, 4);
  if (klen > 0)
    memcpy(b->buf + b->used + 8, k, klen);
  if (vlen > 0)
    memcpy(b->buf + b->used + 8 + klen, v, vlen);
  b->used += need;
  b->records++;
  if (b->records >= BULK_RECORDS || b->used >= BULK_BYTES)
    return bulk_commit(b);
  return 0;
}

int cli_bulk_finish(cli_bulk *b) {
  int rc = bulk_commit(b);
  if (rc != 0)
    return rc;
  return mapkv_sync(b->db);
}

void cli_bulk_abort(cli_bulk *b) {
  free(b->buf);
  b->buf = NULL;
  b->used = b->cap = b->records = 0;
}
