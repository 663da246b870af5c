/*
 * mapkv_repair.c — the maintenance commands of the mapkv tool: verify
 * (check every record), recover (salvage the intact records into a clean
 * store) and compact (offline compaction).
 *
 * verify and recover open the store read-only, so they never change the
 * file they examine: a read-only open runs recovery in memory only.
 *
 * recover in place keeps the damaged original: the new store is written to
 * DB.recovered-tmp and flushed; then the original gets a second name,
 * DB.damaged-<unix time> (a hard link, so that DB never stops existing;
 * rename() when the file system has no hard links), the new store is
 * renamed over DB, and the directory is synced. While it works it holds an
 * exclusive flock() on DB, the lock a mapkv writer holds, so that no writer
 * can be appending to the file it replaces; like the library, it checks
 * after taking the lock that DB still names the file it locked.
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
  rc = cli_open(path, MAPKV_RDONLY, MAPKV_SYNC_COMMIT, &db);
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
  if (st.dropped_tail_bytes > 0)
    printf("note: %llu bytes after offset %llu (%llu intact records) are an "
           "uncommitted tail left by a crash; the next writable open drops "
           "them\n",
           (unsigned long long)st.dropped_tail_bytes,
           (unsigned long long)st.data_end,
           (unsigned long long)st.dropped_tail_records);
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

/* ---- recover ------------------------------------------------------------- */

/* Copies every record the cursor of src returns into dst in batches.
 * Returns 0 or a library error (reported), or CLI_FAIL when interrupted. */
static int copy_records(mapkv_t *src, mapkv_t *dst, const char *what,
                        uint64_t total, uint64_t *copied) {
  mapkv_cursor_t *cur = NULL;
  cli_bulk bulk;
  uint64_t n = 0;
  cli_progress prog;
  int rc;

  if ((rc = mapkv_cursor_open(src, NULL, 0, &cur)) != 0)
    return cli_lib_fail(rc, NULL);
  cli_bulk_init(&bulk, dst);
  cli_progress_begin(&prog, what, total);
  for (;;) {
    const void *k, *v;
    size_t klen, vlen;
    if (cli_signal) {
      rc = CLI_FAIL;
      goto out;
    }
    rc = mapkv_cursor_next(cur, &k, &klen, &v, &vlen);
    if (rc == MAPKV_NOTFOUND)
      break;
    if (rc != 0)
      goto lib_fail;
    if ((rc = cli_bulk_put(&bulk, k, klen, v, vlen)) != 0)
      goto lib_fail;
    n++;
    cli_progress_update(&prog, n, n);
  }
  if ((rc = cli_bulk_finish(&bulk)) != 0)
    goto lib_fail;
  *copied = n;
  goto out;
lib_fail:
  cli_progress_end(&prog);
  rc = cli_lib_fail(rc, NULL);
out:
  cli_progress_end(&prog);
  cli_bulk_abort(&bulk);
  mapkv_cursor_close(cur);
  return rc;
}

/* fsync of the directory holding path, so that renames in it are durable. */
static int sync_dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir;
  int fd, rc = 0;
  if (slash == NULL)
    dir = strdup(".");
  else if (slash == path)
    dir = strdup("/");
  else
    dir = strndup(path, (size_t)(slash - path));
  if (dir == NULL)
    return -ENOMEM;
  fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || fsync(fd) != 0)
    rc = -errno;
  if (fd >= 0)
    close(fd);
  free(dir);
  return rc;
}

static double monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Opens path and takes the writer's lock (an exclusive flock) on the file
 * it names, trying again after short sleeps for up to wait_ms, as the
 * library's lock_timeout_ms does; and, as the library does, makes sure
 * that the file locked is still the one the path names (a compaction may
 * rename a new file over it meanwhile). Returns the descriptor, or -1
 * after reporting the failure in *rc. */
static int lock_store(const char *path, uint32_t wait_ms, int *rc) {
  double deadline = monotonic_ms() + (double)wait_ms;
  long pause_ms = 1;
  for (int attempt = 0; attempt < 100; attempt++) {
    struct stat a, b;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      *rc = cli_fail("%s: %s", path, strerror(errno));
      return -1;
    }
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int e = errno;
      if (e == EWOULDBLOCK && monotonic_ms() < deadline) {
        struct timespec ts = {0, pause_ms * 1000000L};
        nanosleep(&ts, NULL);
        pause_ms = pause_ms * 2 > 25 ? 25 : pause_ms * 2;
        continue;
      }
      close(fd);
      if (e == EWOULDBLOCK)
        *rc = cli_fail("%s is open for writing by another process (stop it, "
                       "wait for it with --wait SECONDS, or recover into a new "
                       "store with -o OUT)",
                       path);
      else
        *rc = cli_fail("locking %s: %s", path, strerror(e));
      return -1;
    }
    if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
        a.st_ino == b.st_ino)
      return fd;
    close(fd); /* replaced meanwhile: lock the new file */
  }
  *rc = cli_fail("%s keeps being replaced", path);
  return -1;
}

/* Gives the file at path the second name DB.damaged-<time> (into *backup,
 * malloc'd), keeping path in place when hard links work. */
static int keep_original(const char *path, char **backup) {
  size_t cap = strlen(path) + 64;
  char *name = malloc(cap);
  long long now = (long long)time(NULL);
  if (name == NULL)
    return cli_fail("out of memory");
  for (int i = 1; i < 1000; i++) {
    if (i == 1)
      snprintf(name, cap, "%s.damaged-%lld", path, now);
    else
      snprintf(name, cap, "%s.damaged-%lld-%d", path, now, i);
    if (link(path, name) == 0) {
      *backup = name;
      return 0;
    }
    if (errno == EEXIST)
      continue;
    /* No hard links here: move the original aside instead (the store is
     * then briefly absent under its name). */
    if (access(name, F_OK) != 0 && rename(path, name) == 0) {
      *backup = name;
      return 0;
    }
    break;
  }
  cli_fail("keeping the original as %s: %s", name, strerror(errno));
  free(name);
  return CLI_FAIL;
}

static int run_recover(int argc, char **argv) {
  static const struct option opts[] = {{"output", required_argument, NULL, 'o'},
                                       {"wait", required_argument, NULL, 'w'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const cli_cmd *cmd = &cli_cmd_recover;
  uint32_t wait_ms = 0;
  const char *path, *out = NULL, *target;
  char *tmp = NULL, *backup = NULL;
  mapkv_t *src = NULL, *dst = NULL;
  mapkv_stats before, after;
  struct stat sb;
  uint64_t saved = 0;
  char what[300];
  int ch, rc, lockfd = -1, created = 0;

  while ((ch = cli_getopt(cmd, argc, argv, "o:w:h", opts, &rc)) != -1) {
    if (ch == 'o')
      out = optarg;
    else if (ch != 'w')
      return rc;
    else if ((rc = cli_parse_wait(cmd, optarg, &wait_ms)) != 0)
      return rc;
  }
  if ((rc = cli_operands(cmd, argc, argv, 1, "DB")) != 0)
    return rc;
  path = argv[optind];

  if (out == NULL) {
    size_t len = strlen(path);
    if ((lockfd = lock_store(path, wait_ms, &rc)) < 0)
      return rc;
    tmp = malloc(len + sizeof ".recovered-tmp");
    if (tmp == NULL) {
      rc = cli_fail("out of memory");
      goto done;
    }
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".recovered-tmp", sizeof ".recovered-tmp");
    if (unlink(tmp) != 0 && errno != ENOENT) {
      rc = cli_fail("removing the leftover %s: %s", tmp, strerror(errno));
      goto done;
    }
    target = tmp;
  } else {
    if (lstat(out, &sb) == 0) {
      rc = cli_fail("%s exists: recover writes a new store (remove it or "
                    "choose another name)",
                    out);
      goto done;
    }
    target = out;
  }

  if ((rc = cli_open(path, MAPKV_RDONLY | MAPKV_VERIFY, MAPKV_SYNC_COMMIT,
                     &src)) != 0)
    goto done;
  mapkv_stat(src, &before);
  if ((rc = cli_open(target, MAPKV_CREATE, MAPKV_SYNC_NONE, &dst)) != 0)
    goto done;
  created = 1;
  cli_catch_signals(0);
  snprintf(what, sizeof what, "recovering %s", path);
  if ((rc = copy_records(src, dst, what, before.records, &saved)) != 0) {
    if (cli_signal)
      cli_fail("recover interrupted; %s is unchanged", path);
    goto done;
  }
  rc = cli_close(dst);
  dst = NULL;
  if (rc != 0)
    goto done;
  mapkv_stat(src, &after);
  mapkv_close(src);
  src = NULL;

  if (out == NULL) {
    /* The recovered store keeps the original's permissions. */
    if (fstat(lockfd, &sb) == 0)
      chmod(tmp, sb.st_mode & 07777);
    if ((rc = keep_original(path, &backup)) != 0)
      goto done;
    if (rename(tmp, path) != 0) {
      rc = cli_fail("renaming %s to %s: %s (the original is kept as %s)", tmp,
                    path, strerror(errno), backup);
      created = 0; /* keep the only copy of the recovered records */
      goto done;
    }
    created = 0;
    if ((rc = sync_dir_of(path)) != 0) {
      rc = cli_fail("syncing the directory of %s: %s", path, strerror(-rc));
      goto done;
    }
  }

  printf("recovered %llu records from %s into %s\n", (unsigned long long)saved,
         path, out != NULL ? out : path);
  printf("skipped: %llu record(s) that failed their checksum\n",
         (unsigned long long)after.checksum_failures);
  printf("dropped by recovery: %llu damaged region(s) of %llu bytes",
         (unsigned long long)before.damaged_regions,
         (unsigned long long)before.damaged_bytes);
  if (before.damaged_regions > 0)
    printf(" (the first at offset %llu)",
           (unsigned long long)before.first_damage_offset);
  printf("; an uncommitted tail of %llu bytes (%llu records)\n",
         (unsigned long long)before.dropped_tail_bytes,
         (unsigned long long)before.dropped_tail_records);
  if (out == NULL)
    printf("the original is now %s; %s holds the recovered store\n", backup,
           path);
  if (fflush(stdout) != 0 || ferror(stdout))
    rc = cli_fail("writing to standard output failed");
  created = 0;

done:
  if (dst != NULL)
    mapkv_close(dst);
  if (created)
    unlink(target);
  mapkv_close(src);
  if (lockfd >= 0)
    close(lockfd);
  free(tmp);
  free(backup);
  return rc;
}

const cli_cmd cli_cmd_recover = {
    "recover", run_recover, "[-o OUT] [--wait S] DB",
    "salvage the intact records into a clean store",
    "Copies every intact live record of DB into a new, clean store. DB is\n"
    "opened read-only: its recovery skips damaged batches and an uncommitted\n"
    "tail, and records that fail their checksum are skipped. Prints how many\n"
    "records were saved and what was dropped.\n"
    "\n"
    "Without -o the store is replaced: the new store is written to\n"
    "DB.recovered-tmp, the original gets the name DB.damaged-<unix time>,\n"
    "and the new store is renamed to DB. No writer may have DB open.\n"
    "\n"
    "  -o, --output OUT    write the new store to OUT (which must not\n"
    "                      exist) and leave DB alone\n"
    "  -w, --wait SECONDS  without -o: if another process has DB open for\n"
    "                      writing, wait up to SECONDS for it to close it\n"
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
