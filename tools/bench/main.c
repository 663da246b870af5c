/*
 * main.c — mapkv-bench: runs the same workloads on mapkv and on every peer
 * store compiled in (LMDB, LevelDB, RocksDB, SQLite, Kyoto Cabinet, tkrzw,
 * gdbm), each in its own child process, and prints one table per workload
 * with every store's ratio to mapkv (or JSON with --json).
 *
 * Exit codes: 0 every store completed every workload it supports and
 * every read returned the right answer; 1 a failure (an operation failed, a
 * read was wrong, a child died); 2 usage.
 *
 * --readprocs-child IN,OUT (not in --help) makes this process one reader
 * process of the readprocs workload, driven over the two descriptors by the
 * store's process that started it (concurrent.c).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define PROG       "mapkv-bench"
#define MAX_REPEAT 99

static void usage(FILE *f) {
  fprintf(
      f,
      "usage: " PROG " [options]\n"
      "Runs the same workloads on mapkv and on every peer store compiled "
      "in, in one run.\n\n"
      "  --num N            records (default 1000000)\n"
      "  --key-size N       bytes per key (default 16)\n"
      "  --value-size N     bytes per value (default 100)\n"
      "  --sync-num N       durable commits of fillsync and fillsync_empty, "
      "and the\n"
      "                     least of fillsync_mt (default 2000)\n"
      "  --threads N        reader threads of readrandom_mt and "
      "readwhilewriting,\n"
      "                     reader processes of readprocs (default 4)\n"
      "  --writers N        writer threads of fillsync_mt (default 4)\n"
      "  --min-seconds S    least duration of readrandom_mt, readprocs,\n"
      "                     readwhilewriting and fillsync_mt (default 2)\n"
      "  --backends a,b     stores to run (default: all compiled in)\n"
      "  --workloads a,b    workloads to run (default: all)\n"
      "  --dir DIR          scratch directory (default: a new one under "
      "$TMPDIR or /tmp)\n"
      "  --seed N           seed of the key orders and values (default "
      "42)\n"
      "  --repeat N         run every store N times, round-robin, and report "
      "each\n"
      "                     workload's median (default 1)\n"
      "  --prefault MIB     memory touched and released before each timed "
      "workload\n"
      "                     (default: 4 x raw data + 256, at most half "
      "of MemAvailable;\n"
      "                     0 = none, the default of --quick)\n"
      "  --quick            tiny run for smoke tests (--num 2000 "
      "--sync-num 50 --threads 2\n"
      "                     --writers 2 --min-seconds 0.05)\n"
      "  --json             print JSON instead of tables\n"
      "  --list             print the compiled-in stores and exit\n"
      "  --help             print this help and exit\n\n"
      "workloads:");
  for (int w = 0; w < W_COUNT; w++)
    fprintf(f, " %s", bench_workload_names[w]);
  fprintf(f, "\nstores:");
  for (size_t i = 0; bk_all[i] != NULL; i++)
    fprintf(f, " %s", bk_all[i]->name);
  fprintf(f, "\n");
}

static int usage_error(const char *fmt, ...) BK_PRINTF(1, 2);

static int usage_error(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, PROG ": ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\nTry '" PROG " --help'.\n");
  return 2;
}

static int parse_seconds(const char *s, double *out) {
  char *end;
  double v;
  errno = 0;
  v = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !(v >= 0 && v <= 3600))
    return -1;
  *out = v;
  return 0;
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
  char *end;
  unsigned long long v;
  errno = 0;
  if (s[0] == '-' || s[0] == '\0')
    return -1;
  v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

/* Splits a comma-separated list; calls fn on each item. */
static int each_item(const char *list, int (*fn)(const char *, void *),
                     void *ctx) {
  char *copy = strdup(list), *save = NULL, *tok;
  int rc = 0;
  if (copy == NULL)
    return -1;
  for (tok = strtok_r(copy, ",", &save); tok != NULL && rc == 0;
       tok = strtok_r(NULL, ",", &save))
    rc = fn(tok, ctx);
  free(copy);
  return rc;
}

static int add_workload(const char *name, void *ctx) {
  unsigned *mask = ctx;
  if (strcmp(name, "all") == 0) {
    *mask = (1u << W_COUNT) - 1;
    return 0;
  }
  for (int w = 0; w < W_COUNT; w++) {
    if (strcmp(name, bench_workload_names[w]) == 0) {
      *mask |= 1u << w;
      return 0;
    }
  }
  return usage_error("unknown workload '%s'", name);
}

static int add_backend(const char *name, void *ctx) {
  unsigned *mask = ctx;
  for (size_t i = 0; bk_all[i] != NULL; i++) {
    if (strcmp(name, bk_all[i]->name) == 0) {
      *mask |= 1u << i;
      return 0;
    }
  }
  return usage_error("unknown or not compiled-in store '%s' (see --list)",
                     name);
}

/* Reads the child's results until EOF; returns the number read. */
static int collect(int fd, bench_row *row) {
  bench_result res;
  int got = 0;
  for (;;) {
    size_t off = 0;
    while (off < sizeof res) {
      ssize_t n = read(fd, (char *)&res + off, sizeof res - off);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return got;
      off += (size_t)n;
    }
    if (res.workload >= 0 && res.workload < W_COUNT) {
      row->r[res.workload] = res;
      row->have[res.workload] = 1;
      got++;
    }
  }
}

/* MemAvailable of /proc/meminfo in bytes, or 0 if unknown. */
static uint64_t mem_available(void) {
  FILE *f = fopen("/proc/meminfo", "r");
  char line[256];
  unsigned long long kb = 0;
  if (f == NULL)
    return 0;
  while (fgets(line, sizeof line, f) != NULL)
    if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
      break;
  fclose(f);
  return (uint64_t)kb << 10;
}

/* Four times the raw data plus 256 MiB: more than any store's files, index
 * and caches need during its workloads; at most half of what is free. */
static uint64_t default_prefault(const bench_config *cfg) {
  uint64_t raw = cfg->num * (uint64_t)(cfg->key_size + cfg->value_size);
  uint64_t want = 4 * raw + (256ull << 20), avail = mem_available() / 2;
  return want < avail ? want : avail;
}

/* Combines the rounds of one store (rounds[k * stride], k < n) into out:
 * per workload, the round with the median value; a workload that failed
 * or is missing in any round is reported from that round. */
static void median_row(bench_row *out, const bench_row *rounds, size_t stride,
                       int n) {
  out->ran = rounds[0].ran;
  for (int k = 0; k < n; k++)
    out->crashed |= rounds[(size_t)k * stride].crashed;
  for (int w = 0; w < W_COUNT; w++) {
    const bench_row *pick[MAX_REPEAT];
    int m = 0, bad = -1;
    for (int k = 0; k < n; k++) {
      const bench_row *r = &rounds[(size_t)k * stride];
      if (!r->have[w] || r->r[w].failed) {
        if (bad < 0 || r->have[w])
          bad = k;
        continue;
      }
      /* Insertion by value, ascending. */
      int j = m++;
      while (j > 0 && pick[j - 1]->r[w].value > r->r[w].value) {
        pick[j] = pick[j - 1];
        j--;
      }
      pick[j] = r;
    }
    if (bad >= 0) {
      const bench_row *r = &rounds[(size_t)bad * stride];
      out->have[w] = r->have[w];
      out->r[w] = r->r[w];
    } else if (m > 0) {
      out->have[w] = 1;
      out->r[w] = pick[m / 2]->r[w];
    }
  }
}

/* Runs one store (bk != NULL) or the fdatasync baseline in a child. 0 if
 * the child exited 0, else 1. */
static int run_child(const bench_config *cfg, const bk_vtable *bk,
                     const char *root, bench_row *row) {
  char *dir;
  int fds[2], status = 0;
  pid_t pid;
  const char *name = bk != NULL ? bk->name : "fdatasync";
  size_t len = strlen(root) + strlen(name) + 2;
  row->ran = 1;
  if ((dir = malloc(len)) == NULL)
    return 1;
  snprintf(dir, len, "%s/%s", root, name);
  /* Start every store with no dirty pages of the previous one queued. */
  sync();
  if (pipe(fds) != 0) {
    perror(PROG ": pipe");
    free(dir);
    return 1;
  }
  fflush(NULL);
  pid = fork();
  if (pid < 0) {
    perror(PROG ": fork");
    close(fds[0]);
    close(fds[1]);
    free(dir);
    return 1;
  }
  if (pid == 0) {
    int rc;
    close(fds[0]);
    rc = bk != NULL ? bench_run_store(cfg, bk, dir, fds[1])
                    : bench_run_fdatasync(cfg, dir, fds[1]);
    close(fds[1]);
    free(dir);
    fflush(NULL);
    exit(rc != 0 ? 1 : 0);
  }
  close(fds[1]);
  collect(fds[0], row);
  close(fds[0]);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  /* Whatever the child left behind. */
  if (bk != NULL) {
    static const char *const suffix[] = {"", "-fillseq", "-sync",
                                         "-sync-empty"};
    for (size_t i = 0; i < sizeof suffix / sizeof *suffix; i++) {
      char *d = malloc(len + 16);
      if (d != NULL) {
        snprintf(d, len + 16, "%s%s", dir, suffix[i]);
        bench_rmtree(d);
        free(d);
      }
    }
  }
  free(dir);
  if (WIFSIGNALED(status)) {
    row->crashed = 1;
    fprintf(stderr, PROG ": %s: the process died of signal %d (%s)\n", name,
            WTERMSIG(status), strsignal(WTERMSIG(status)));
    return 1;
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  enum {
    O_NUM = 256,
    O_KEY,
    O_VALUE,
    O_SYNCNUM,
    O_THREADS,
    O_WRITERS,
    O_MINSEC,
    O_READPROC,
    O_BACKENDS,
    O_WORKLOADS,
    O_DIR,
    O_SEED,
    O_PREFAULT,
    O_REPEAT,
    O_QUICK,
    O_JSON,
    O_LIST,
    O_HELP
  };
  static const struct option longopts[] = {
      {"num", required_argument, NULL, O_NUM},
      {"key-size", required_argument, NULL, O_KEY},
      {"value-size", required_argument, NULL, O_VALUE},
      {"sync-num", required_argument, NULL, O_SYNCNUM},
      {"threads", required_argument, NULL, O_THREADS},
      {"writers", required_argument, NULL, O_WRITERS},
      {"min-seconds", required_argument, NULL, O_MINSEC},
      {"readprocs-child", required_argument, NULL, O_READPROC},
      {"backends", required_argument, NULL, O_BACKENDS},
      {"workloads", required_argument, NULL, O_WORKLOADS},
      {"dir", required_argument, NULL, O_DIR},
      {"seed", required_argument, NULL, O_SEED},
      {"prefault", required_argument, NULL, O_PREFAULT},
      {"repeat", required_argument, NULL, O_REPEAT},
      {"quick", no_argument, NULL, O_QUICK},
      {"json", no_argument, NULL, O_JSON},
      {"list", no_argument, NULL, O_LIST},
      {"help", no_argument, NULL, O_HELP},
      {NULL, 0, NULL, 0}};
  bench_config cfg;
  /* Zeroed whole (padding too): reader processes are sent a copy. */
  memset(&cfg, 0, sizeof cfg);
  cfg.num = 1000000;
  cfg.sync_num = 2000;
  cfg.key_size = 16;
  cfg.value_size = 100;
  cfg.threads = 4;
  cfg.writers = 4;
  cfg.min_seconds = 2.0;
  cfg.seed = 42;
  cfg.repeat = 1;
  int set_num = 0, set_sync = 0, set_threads = 0, quick = 0, json = 0;
  int set_writers = 0, set_minsec = 0;
  int set_prefault = 0;
  unsigned stores = 0;
  const char *dir = NULL;
  char *made = NULL;
  bench_row rows[16], base, *reps;
  const bk_vtable *which[16];
  size_t nrows = 0;
  bench_info info;
  int opt, failed = 0, want_base;
  uint64_t v;

  while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (opt) {
    case O_NUM:
      if (parse_u64(optarg, 1, 1u << 30, &cfg.num) != 0)
        return usage_error("--num: expected 1 .. 2^30, got '%s'", optarg);
      set_num = 1;
      break;
    case O_KEY:
      if (parse_u64(optarg, 1, 4096, &v) != 0)
        return usage_error("--key-size: expected 1 .. 4096, got '%s'", optarg);
      cfg.key_size = (size_t)v;
      break;
    case O_VALUE:
      if (parse_u64(optarg, 1, 1u << 20, &v) != 0)
        return usage_error("--value-size: expected 1 .. 1048576, got '%s'",
                           optarg);
      cfg.value_size = (size_t)v;
      break;
    case O_SYNCNUM:
      if (parse_u64(optarg, 1, 1u << 30, &cfg.sync_num) != 0)
        return usage_error("--sync-num: expected 1 .. 2^30, got '%s'", optarg);
      set_sync = 1;
      break;
    case O_THREADS:
      if (parse_u64(optarg, 1, 256, &v) != 0)
        return usage_error("--threads: expected 1 .. 256, got '%s'", optarg);
      cfg.threads = (int)v;
      set_threads = 1;
      break;
    case O_WRITERS:
      if (parse_u64(optarg, 1, 256, &v) != 0)
        return usage_error("--writers: expected 1 .. 256, got '%s'", optarg);
      cfg.writers = (int)v;
      set_writers = 1;
      break;
    case O_MINSEC:
      if (parse_seconds(optarg, &cfg.min_seconds) != 0)
        return usage_error("--min-seconds: expected 0 .. 3600, got '%s'",
                           optarg);
      set_minsec = 1;
      break;
    case O_READPROC: {
      int in, out;
      char extra;
      if (sscanf(optarg, "%d,%d%c", &in, &out, &extra) != 2 || in < 0 ||
          out < 0)
        return usage_error("--readprocs-child: expected IN,OUT");
      return bench_readproc_main(in, out);
    }
    case O_BACKENDS:
      if (each_item(optarg, add_backend, &stores) != 0)
        return 2;
      break;
    case O_WORKLOADS:
      if (each_item(optarg, add_workload, &cfg.workloads) != 0)
        return 2;
      break;
    case O_DIR:
      dir = optarg;
      break;
    case O_SEED:
      if (parse_u64(optarg, 0, UINT64_MAX, &cfg.seed) != 0)
        return usage_error("--seed: expected a number, got '%s'", optarg);
      break;
    case O_PREFAULT:
      if (parse_u64(optarg, 0, 1u << 30, &v) != 0)
        return usage_error("--prefault: expected MiB 0 .. 2^30, got '%s'",
                           optarg);
      cfg.prefault = v << 20;
      set_prefault = 1;
      break;
    case O_REPEAT:
      if (parse_u64(optarg, 1, MAX_REPEAT, &v) != 0)
        return usage_error("--repeat: expected 1 .. %d, got '%s'", MAX_REPEAT,
                           optarg);
      cfg.repeat = (int)v;
      break;
    case O_QUICK:
      quick = 1;
      break;
    case O_JSON:
      json = 1;
      break;
    case O_LIST:
      for (size_t i = 0; bk_all[i] != NULL; i++)
        printf("%s %s\n", bk_all[i]->name, bk_all[i]->version());
      return 0;
    case O_HELP:
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (optind < argc)
    return usage_error("unexpected argument '%s'", argv[optind]);
  if (quick) {
    if (!set_num)
      cfg.num = 2000;
    if (!set_sync)
      cfg.sync_num = 50;
    if (!set_threads)
      cfg.threads = 2;
    if (!set_writers)
      cfg.writers = 2;
    if (!set_minsec)
      cfg.min_seconds = 0.05;
  }
  if ((((cfg.workloads >> W_READPROCS) & 1u) || cfg.workloads == 0) &&
      cfg.threads > BENCH_MAX_PROCS)
    return usage_error("--threads %d: readprocs runs at most %d reader "
                       "processes",
                       cfg.threads, BENCH_MAX_PROCS);
  /* The key numbers go up to 2 * num + 1 and must fit the hex digits. */
  if (cfg.key_size < 16 &&
      (2 * cfg.num + 2 > (1ull << (4 * cfg.key_size)) ||
       2 * cfg.sync_num + 2 > (1ull << (4 * cfg.key_size))))
    return usage_error("--key-size %zu is too small: keys are the numbers "
                       "up to 2 * num + 1 in hex",
                       cfg.key_size);
  if (cfg.workloads == 0)
    cfg.workloads = (1u << W_COUNT) - 1;
  if (!set_prefault)
    cfg.prefault = quick ? 0 : default_prefault(&cfg);
  if (stores == 0)
    for (size_t i = 0; bk_all[i] != NULL; i++)
      stores |= 1u << i;

  if (dir == NULL) {
    const char *tmp = getenv("TMPDIR");
    size_t len;
    if (tmp == NULL || tmp[0] == '\0')
      tmp = "/tmp";
    len = strlen(tmp) + 32;
    made = malloc(len);
    if (made == NULL)
      return 1;
    snprintf(made, len, "%s/mapkv-bench.XXXXXX", tmp);
    if (mkdtemp(made) == NULL) {
      fprintf(stderr, PROG ": mkdtemp %s: %s\n", made, strerror(errno));
      free(made);
      return 1;
    }
    dir = made;
  } else if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, PROG ": mkdir %s: %s\n", dir, strerror(errno));
    return 1;
  }
  bench_info_gather(&info, argc, argv, dir);

  memset(rows, 0, sizeof rows);
  memset(&base, 0, sizeof base);
  base.name = "write+fdatasync";
  base.version = "";
  for (size_t i = 0; bk_all[i] != NULL && nrows < 16; i++) {
    if (!((stores >> i) & 1u))
      continue;
    rows[nrows].name = bk_all[i]->name;
    rows[nrows].version = bk_all[i]->version();
    which[nrows++] = bk_all[i];
  }
  want_base = ((cfg.workloads >> W_FILLSYNC) & 1u) ||
              ((cfg.workloads >> W_FILLSYNC_EMPTY) & 1u);
  reps = calloc((size_t)cfg.repeat * (nrows + 1), sizeof *reps);
  if (reps == NULL) {
    fprintf(stderr, PROG ": out of memory\n");
    return 1;
  }
  /* Round-robin: every store runs once per round, so that a slow spell of
   * the machine hits all of them alike. */
  for (int k = 0; k < cfg.repeat; k++) {
    bench_row *round = reps + (size_t)k * (nrows + 1);
    for (size_t i = 0; i < nrows; i++) {
      round[i].name = rows[i].name;
      round[i].version = rows[i].version;
      failed |= run_child(&cfg, which[i], dir, &round[i]);
    }
    if (want_base) {
      round[nrows].name = base.name;
      round[nrows].version = base.version;
      failed |= run_child(&cfg, NULL, dir, &round[nrows]);
    }
  }
  for (size_t i = 0; i <= nrows; i++)
    median_row(i < nrows ? &rows[i] : &base, reps + i, nrows + 1, cfg.repeat);
  free(reps);

  /* Every selected workload of every store must have reported success (or
   * that the store does not support it). */
  for (size_t i = 0; i < nrows; i++)
    for (int w = 0; w < W_COUNT; w++)
      if (((cfg.workloads >> w) & 1u) &&
          (!rows[i].have[w] || rows[i].r[w].failed))
        failed = 1;
  if (want_base && (!base.have[W_FILLSYNC] || base.r[W_FILLSYNC].failed))
    failed = 1;

  if (json)
    bench_report_json(&cfg, &info, rows, nrows, want_base ? &base : NULL);
  else
    bench_report_text(&cfg, &info, rows, nrows, want_base ? &base : NULL);
  fflush(stdout);
  if (failed)
    fprintf(stderr, PROG ": FAILED: see the messages above\n");
  else
    fprintf(stderr,
            PROG ": ok: %zu stores, every workload completed (or not "
                 "supported by the store), every read verified\n",
            nrows);
  if (made != NULL) {
    bench_rmtree(made);
    free(made);
  }
  free(info.command);
  return failed ? 1 : 0;
}
