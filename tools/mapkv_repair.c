/*
 * mapkv_repair.c — the maintenance commands of the mapkv tool: verify
 * (check every record), recover and upgrade (salvage the intact records
 * into a clean store: mapkv_recover(), which carries the lock-and-replace
 * protocol), compact (offline compaction: mapkv_compact()) and copy (a
 * hot copy: mapkv_copy()).
 *
 * verify opens the store read-only (a salvage open, which refuses nothing),
 * so it never changes the file it examines; copy opens it read-only too,
 * so that it works while another process writes the store.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mapkv_cli.h"

/* ---- verify -------------------------------------------------------------- */

typedef struct span {
  uint64_t off, len;
  char *what;
} span;

typedef struct spans {
  span *v;
  size_t n, cap;
  int nomem;
} spans;

/* Damage is collected and printed after the check, so that report lines
 * never interleave with the progress line. */
static void on_damage(void *ctx, uint64_t off, uint64_t len, const char *what) {
  spans *s = ctx;
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 16;
    span *v = realloc(s->v, cap * sizeof *v);
    if (v == NULL) {
      s->nomem = 1;
      return;
    }
    s->v = v;
    s->cap = cap;
  }
  s->v[s->n].off = off;
  s->v[s->n].len = len;
  s->v[s->n].what = strdup(what != NULL ? what : "damaged");
  s->n++;
}

static int run_verify(int argc, char **argv) {
  static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const cli_cmd *cmd = &cli_cmd_verify;
  const char *path;
  mapkv_t *db = NULL;
  mapkv_stats st;
  spans s = {NULL, 0, 0, 0};
  uint64_t count = 0, bytes = 0;
  cli_busy *busy;
  char what[300];
  int ch, rc, vrc = 0;

  while ((ch = cli_getopt(cmd, argc, argv, "h", opts, &rc)) != -1)
    return rc;
  if ((rc = cli_operands(cmd, argc, argv, 1, "DB")) != 0)
    return rc;
  path = argv[optind];
  snprintf(what, sizeof what, "verifying %s", path);
  busy = cli_busy_begin(what);
  /* A salvage open: it refuses nothing (a log its header does not match,
   * a truncated file), so that verify can say what is wrong. */
  rc = cli_open(path, MAPKV_RDONLY | MAPKV_VERIFY, MAPKV_SYNC_COMMIT, &db);
  if (rc == 0) {
    vrc = mapkv_verify(db, on_damage, &s, &count);
    if (vrc != 0 && vrc != MAPKV_ECORRUPT) {
      cli_busy_end(busy);
      rc = cli_lib_fail(vrc, NULL);
      goto done;
    }
  }
  cli_busy_end(busy);
  if (rc != 0)
    goto done;
  mapkv_stat(db, &st);

  for (size_t i = 0; i < s.n; i++) {
    printf("damaged: offset %llu, %llu bytes: %s\n",
           (unsigned long long)s.v[i].off, (unsigned long long)s.v[i].len,
           s.v[i].what ? s.v[i].what : "damaged");
    bytes += s.v[i].len;
  }
  {
    /* A tail that is not damage is what an interrupted write leaves. */
    int tail_is_damage = 0;
    for (size_t i = 0; i < s.n; i++)
      tail_is_damage |= s.v[i].off >= st.data_end;
    if (st.dropped_tail_bytes > 0 && !tail_is_damage)
      printf("note: %llu bytes after offset %llu (%llu intact records) are "
             "an uncommitted tail left by a crash; the next writable open "
             "drops them\n",
             (unsigned long long)st.dropped_tail_bytes,
             (unsigned long long)st.data_end,
             (unsigned long long)st.dropped_tail_records);
  }
  if (st.damaged_keys > 0)
    printf("damaged keys: %llu (they answer \"damaged\" until written "
           "again; mapkv recover leaves them behind)\n",
           (unsigned long long)st.damaged_keys);
  if (vrc == 0) {
    printf("%s: ok: %llu records, data end at offset %llu, no damage\n", path,
           (unsigned long long)st.records, (unsigned long long)st.data_end);
    rc = CLI_OK;
  } else {
    printf("%s: DAMAGED: %llu damaged span(s), %llu bytes, the first at "
           "offset %llu\n",
           path, (unsigned long long)(count > s.n ? count : s.n),
           (unsigned long long)bytes,
           (unsigned long long)(s.n ? s.v[0].off : 0));
    rc = CLI_DAMAGED;
  }
  if (s.nomem)
    cli_warn("out of memory: not every damaged span is listed");
  if (fflush(stdout) != 0 || ferror(stdout))
    rc = cli_fail("writing to standard output failed");
done:
  mapkv_close(db);
  for (size_t i = 0; i < s.n; i++)
    free(s.v[i].what);
  free(s.v);
  return rc;
}

const cli_cmd cli_cmd_verify = {
    "verify", run_verify, "DB", "check every record; exit 1 if damaged",
    "Opens DB read-only and checks every record from the header to the end\n"
    "of the data: checksums, lengths and batches. Prints each damaged span\n"
    "(file offset, length, reason) and a summary line. Exits 0 if DB is\n"
    "intact, 1 if it is damaged (see mapkv recover), 3 if it cannot be\n"
    "read.\n"
    "\n"
    "  -h, --help  show this help\n"};

/* ---- recover and upgrade ------------------------------------------------- */

/* Runs mapkv_recover() with a busy indicator, and reports what it did. */
static int salvage(const char *path, const char *out, unsigned flags,
                   uint32_t wait_ms, const char *verb) {
  mapkv_recover_info info;
  cli_busy *busy;
  char what[300];
  int rc;

  snprintf(what, sizeof what, "%s %s", verb, path);
  busy = cli_busy_begin(what);
  rc = mapkv_recover(path, out, flags, wait_ms, &info);
  cli_busy_end(busy);
  if (rc != 0) {
    if (rc == MAPKV_ELOCKED)
      return cli_fail("%s (stop it, wait for it with --wait SECONDS, or "
                      "recover into a new store with -o OUT)",
                      mapkv_errmsg());
    return cli_lib_fail(rc, NULL);
  }
  if (!info.rewritten) {
    printf("%s: no damage found (%llu records, format version %u): nothing "
           "to recover, the store is unchanged\n",
           path, (unsigned long long)info.found.records,
           (unsigned)info.found.format_version);
    return fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
  }
  printf("recovered %llu records from %s into %s\n",
         (unsigned long long)info.saved, path, out != NULL ? out : path);
  printf("left behind: %llu live record(s) that were damaged or belonged to "
         "a batch that damage cost\n",
         (unsigned long long)info.lost);
  printf("dropped by recovery: %llu damaged region(s) of %llu bytes",
         (unsigned long long)info.found.damaged_regions,
         (unsigned long long)info.found.damaged_bytes);
  if (info.found.damaged_regions > 0)
    printf(" (the first at offset %llu)",
           (unsigned long long)info.found.first_damage_offset);
  printf("; an uncommitted tail of %llu bytes (%llu records)\n",
         (unsigned long long)info.found.dropped_tail_bytes,
         (unsigned long long)info.found.dropped_tail_records);
  if (info.found.truncated_bytes > 0)
    printf("the file was %llu bytes shorter than its header records\n",
           (unsigned long long)info.found.truncated_bytes);
  if (info.backup[0] != '\0')
    printf("the original is kept as %s (remove it once the recovered store "
           "is known good); %s holds the recovered store\n",
           info.backup, path);
  return fflush(stdout) == 0 && !ferror(stdout)
             ? CLI_OK
             : cli_fail("writing to standard output failed");
}

static int run_recover(int argc, char **argv) {
  static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
                                       {"force", no_argument, NULL, 'f'},
                                       {"wait", required_argument, NULL, 'w'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const cli_cmd *cmd = &cli_cmd_recover;
  uint32_t wait_ms = 0;
  unsigned flags = 0;
  const char *out = NULL;
  int ch, rc;

  while ((ch = cli_getopt(cmd, argc, argv, "o:fw:h", opts, &rc)) != -1) {
    if (ch == 'o')
      out = optarg;
    else if (ch == 'f')
      flags |= MAPKV_RECOVER_FORCE;
    else if (ch != 'w')
      return rc;
    else if ((rc = cli_parse_wait(cmd, optarg, &wait_ms)) != 0)
      return rc;
  }
  if ((rc = cli_operands(cmd, argc, argv, 1, "DB")) != 0)
    return rc;
  return salvage(argv[optind], out, flags, wait_ms, "recovering");
}

const cli_cmd cli_cmd_recover = {
    "recover", run_recover, "[-o OUT] [--force] [--wait S] DB",
    "salvage the intact records into a clean store",
    "Copies every intact live record of DB into a new, clean store. DB is\n"
    "opened read-only with every checksum verified: damaged records, the\n"
    "records of a batch that damage cost, and an uncommitted tail are left\n"
    "behind. Prints how many records were saved and what was left.\n"
    "\n"
    "Without -o the store is replaced, holding the writer's lock: the new\n"
    "store is written next to DB (taking its mode and owner), the original\n"
    "gets the second name DB.damaged-<unix time> (DB.v1-<time> when only\n"
    "its format was upgraded), and the new store is renamed to DB. A store\n"
    "with no damage is left alone (unless --force). Damaged copies are never\n"
    "removed by mapkv: delete them once the recovered store is known good.\n"
    "\n"
    "  -o, --output OUT    write the new store to OUT (which must not\n"
    "                      exist) and leave DB alone\n"
    "  -f, --force         rewrite DB even when it has no damage (the\n"
    "                      original is kept as DB.orig-<unix time>)\n"
    "  -w, --wait SECONDS  without -o: if another process has DB open for\n"
    "                      writing, wait up to SECONDS for it to close it\n"
    "  -h, --help          show this help\n"};

static int run_upgrade(int argc, char **argv) {
  static const struct option opts[] = {{"wait", required_argument, NULL, 'w'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const cli_cmd *cmd = &cli_cmd_upgrade;
  uint32_t wait_ms = 0;
  int ch, rc;

  while ((ch = cli_getopt(cmd, argc, argv, "w:h", opts, &rc)) != -1) {
    if (ch != 'w')
      return rc;
    if ((rc = cli_parse_wait(cmd, optarg, &wait_ms)) != 0)
      return rc;
  }
  if ((rc = cli_operands(cmd, argc, argv, 1, "DB")) != 0)
    return rc;
  return salvage(argv[optind], NULL, 0, wait_ms, "upgrading");
}

const cli_cmd cli_cmd_upgrade = {
    "upgrade", run_upgrade, "[--wait S] DB",
    "rewrite a store of an older format version",
    "Rewrites DB in the current format version (mapkv_recover() in place):\n"
    "a store of an older version opens read-only only, and is refused by\n"
    "writable opens until it is upgraded. The original is kept as\n"
    "DB.v<N>-<unix time> (DB.damaged-<time> if it had damage, which is then\n"
    "left behind as mapkv recover does). A store of the current version\n"
    "without damage is left alone.\n"
    "\n"
    "  -w, --wait SECONDS  if another process has DB open for writing, wait\n"
    "                      up to SECONDS for it to close it\n"
    "  -h, --help          show this help\n"};

/* ---- compact ------------------------------------------------------------- */

static int run_compact(int argc, char **argv) {
  static const struct option opts[] = {{"wait", required_argument, NULL, 'w'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const cli_cmd *cmd = &cli_cmd_compact;
  const char *path;
  mapkv_t *db = NULL;
  mapkv_stats before, after;
  cli_busy *busy;
  char what[300];
  uint32_t wait_ms = 0;
  int ch, rc;

  while ((ch = cli_getopt(cmd, argc, argv, "w:h", opts, &rc)) != -1) {
    if (ch != 'w')
      return rc;
    if ((rc = cli_parse_wait(cmd, optarg, &wait_ms)) != 0)
      return rc;
  }
  if ((rc = cli_operands(cmd, argc, argv, 1, "DB")) != 0)
    return rc;
  path = argv[optind];
  if ((rc = cli_open_wait(path, 0, MAPKV_SYNC_COMMIT, wait_ms, &db)) != 0)
    return rc;
  mapkv_stat(db, &before);
  snprintf(what, sizeof what, "compacting %s", path);
  busy = cli_busy_begin(what);
  rc = mapkv_compact(db);
  cli_busy_end(busy);
  if (rc != 0) {
    rc = cli_lib_fail(rc, NULL);
    mapkv_close(db);
    return rc;
  }
  mapkv_stat(db, &after);
  if ((rc = cli_close(db)) != 0)
    return rc;
  printf("compacted %s: %llu bytes before, %llu bytes after (data %llu -> "
         "%llu bytes, %llu records, %llu dead bytes dropped)\n",
         path, (unsigned long long)before.file_size,
         (unsigned long long)after.file_size,
         (unsigned long long)before.data_end,
         (unsigned long long)after.data_end, (unsigned long long)after.records,
         (unsigned long long)before.dead_bytes);
  if (fflush(stdout) != 0 || ferror(stdout))
    return cli_fail("writing to standard output failed");
  return CLI_OK;
}

const cli_cmd cli_cmd_compact = {
    "compact", run_compact, "[--wait S] DB", "rewrite DB without dead records",
    "Compacts DB offline: opens it for writing, copies the live records into\n"
    "a new file and renames it over DB (mapkv_compact). Prints the file size\n"
    "before and after. No other writer may have DB open.\n"
    "\n"
    "  -w, --wait SECONDS  if another process has DB open for writing, wait\n"
    "                      up to SECONDS for it to close it\n"
    "  -h, --help          show this help\n"};

/* ---- copy ----------------------------------------------------------------- */

static int run_copy(int argc, char **argv) {
  static const struct option opts[] = {{"compact", no_argument, NULL, 'c'},
                                       {"force", no_argument, NULL, 'f'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const cli_cmd *cmd = &cli_cmd_copy;
  const char *src, *dst;
  mapkv_t *db = NULL, *out = NULL;
  mapkv_stats from, to;
  unsigned flags = 0;
  cli_busy *busy;
  char what[300];
  int ch, rc;

  while ((ch = cli_getopt(cmd, argc, argv, "cfh", opts, &rc)) != -1) {
    if (ch == 'c')
      flags |= MAPKV_COPY_COMPACT;
    else if (ch == 'f')
      flags |= MAPKV_COPY_FORCE;
    else
      return rc;
  }
  if ((rc = cli_operands(cmd, argc, argv, 2, "SRC DST")) != 0)
    return rc;
  src = argv[optind];
  dst = argv[optind + 1];
  /* Read-only: no lock, so that a process writing SRC goes on; the copy
   * holds what was committed when SRC was opened. */
  if ((rc = cli_open(src, MAPKV_RDONLY, MAPKV_SYNC_COMMIT, &db)) != 0)
    return rc;
  mapkv_stat(db, &from);
  snprintf(what, sizeof what, "copying %s", src);
  busy = cli_busy_begin(what);
  rc = mapkv_copy(db, dst, flags);
  cli_busy_end(busy);
  if (rc != 0) {
    rc = cli_lib_fail(rc, NULL);
    mapkv_close(db);
    return rc;
  }
  mapkv_close(db);
  /* What the copy holds, as an open of it finds it. */
  if ((rc = cli_open(dst, MAPKV_RDONLY, MAPKV_SYNC_COMMIT, &out)) != 0)
    return rc;
  mapkv_stat(out, &to);
  mapkv_close(out);
  printf("copied %s to %s: %llu records, %llu bytes of data", src, dst,
         (unsigned long long)to.records,
         (unsigned long long)(to.data_end - 4096));
  if (flags & MAPKV_COPY_COMPACT)
    printf(" (%llu dead bytes left out)", (unsigned long long)from.dead_bytes);
  printf("\n");
  if (fflush(stdout) != 0 || ferror(stdout))
    return cli_fail("writing to standard output failed");
  return CLI_OK;
}

const cli_cmd cli_cmd_copy = {
    "copy", run_copy, "[-c] [--force] SRC DST",
    "copy a store, also while it is written",
    "Writes a copy of SRC to DST (mapkv_copy). SRC is opened read-only, so\n"
    "the copy works while another process writes SRC: it holds exactly the\n"
    "commits made when SRC was opened, and the writer does not wait for it.\n"
    "The copy is written under a temporary name next to DST, flushed,\n"
    "verified (every record's checksum) and then linked to DST: DST is\n"
    "never a partial copy. It takes SRC's mode (and, as root, its owner).\n"
    "A plain copy keeps SRC's log as it is (its file id and dead records);\n"
    "a store with damage is not copied (see mapkv recover). Prints how many\n"
    "records the copy holds.\n"
    "\n"
    "  -c, --compact  copy only the live records, as compact writes them\n"
    "                 (a new file id, no dead bytes)\n"
    "  -f, --force    replace DST if it exists (without it, an existing DST\n"
    "                 is an error)\n"
    "  -h, --help     show this help\n"};
