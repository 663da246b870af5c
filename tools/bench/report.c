/*
 * report.c — what mapkv-bench prints: the machine, the exact command, and
 * one table per workload (or the same as one JSON document).
 *
 * Every ratio is relative to mapkv and oriented so that > 1 means the
 * store does better than mapkv: for ops/s it is store / mapkv; for seconds
 * and bytes (lower is better) it is mapkv / store.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "iocount.h"

/* ---- machine information ------------------------------------------------ */

static void first_field(const char *file, const char *key, char *out,
                        size_t cap) {
  FILE *f = fopen(file, "r");
  char line[512];
  size_t n = strlen(key);
  snprintf(out, cap, "unknown");
  if (f == NULL)
    return;
  while (fgets(line, sizeof line, f) != NULL) {
    char *p;
    if (strncmp(line, key, n) != 0 || (p = strchr(line, ':')) == NULL)
      continue;
    p++;
    while (*p == ' ' || *p == '\t')
      p++;
    p[strcspn(p, "\n")] = '\0';
    snprintf(out, cap, "%s", p);
    break;
  }
  fclose(f);
}

static const char *fs_name(long type) {
  switch ((unsigned long)type) {
  case 0xEF53ul:
    return "ext2/3/4";
  case 0x01021994ul:
    return "tmpfs";
  case 0x58465342ul:
    return "xfs";
  case 0x9123683Eul:
    return "btrfs";
  case 0x794c7630ul:
    return "overlayfs";
  case 0x2fc12fc1ul:
    return "zfs";
  default:
    return NULL;
  }
}

/* Appends s to the command line, quoted for a POSIX shell if needed. */
static void append_arg(char **cmd, size_t *len, size_t *cap, const char *s) {
  int plain = s[0] != '\0';
  size_t need;
  for (const char *p = s; *p != '\0'; p++)
    if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
               "0123456789-_=./,:+@%",
               *p) == NULL)
      plain = 0;
  need = *len + 4 * strlen(s) + 4;
  if (need > *cap) {
    char *c = realloc(*cmd, need * 2);
    if (c == NULL)
      return;
    *cmd = c;
    *cap = need * 2;
  }
  if (*len > 0)
    (*cmd)[(*len)++] = ' ';
  if (plain) {
    memcpy(*cmd + *len, s, strlen(s));
    *len += strlen(s);
  } else {
    (*cmd)[(*len)++] = '\'';
    for (const char *p = s; *p != '\0'; p++) {
      if (*p == '\'') {
        memcpy(*cmd + *len, "'\\''", 4);
        *len += 4;
      } else {
        (*cmd)[(*len)++] = *p;
      }
    }
    (*cmd)[(*len)++] = '\'';
  }
  (*cmd)[*len] = '\0';
}

void bench_info_gather(bench_info *info, int argc, char **argv,
                       const char *dir) {
  struct utsname u;
  struct statfs sf;
  time_t now = time(NULL);
  struct tm tm;
  char mem[64];
  size_t len = 0, cap = 0;
  memset(info, 0, sizeof *info);
  first_field("/proc/cpuinfo", "model name", info->cpu, sizeof info->cpu);
  info->cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
  first_field("/proc/meminfo", "MemTotal", mem, sizeof mem);
  snprintf(info->memory, sizeof info->memory, "%.1f GiB",
           strtod(mem, NULL) / 1048576.0);
  if (uname(&u) == 0)
    snprintf(info->kernel, sizeof info->kernel, "%.32s %.80s %.32s", u.sysname,
             u.release, u.machine);
  gmtime_r(&now, &tm);
  strftime(info->date, sizeof info->date, "%Y-%m-%d %H:%M:%S UTC", &tm);
  {
    FILE *f = fopen("/proc/loadavg", "r");
    double l1, l5, l15;
    if (f != NULL && fscanf(f, "%lf %lf %lf", &l1, &l5, &l15) == 3)
      snprintf(info->load, sizeof info->load, "%.2f %.2f %.2f", l1, l5, l15);
    else
      snprintf(info->load, sizeof info->load, "unknown");
    if (f != NULL)
      fclose(f);
  }
  if (statfs(dir, &sf) == 0) {
    const char *n = fs_name((long)sf.f_type);
    if (n != NULL)
      snprintf(info->fs, sizeof info->fs, "%s", n);
    else
      snprintf(info->fs, sizeof info->fs, "type 0x%lx",
               (unsigned long)sf.f_type);
  } else {
    snprintf(info->fs, sizeof info->fs, "unknown");
  }
  for (int i = 0; i < argc; i++)
    append_arg(&info->command, &len, &cap, argv[i]);
  info->dir = dir;
  {
    bench_io io;
    bench_io_find(dir, &io);
    snprintf(info->device, sizeof info->device, "%s", io.name);
  }
}

/* ---- helpers ------------------------------------------------------------- */

/* 1234567.8 -> "1,234,568". */
static const char *grouped(double v, char *buf, size_t cap) {
  char tmp[64];
  size_t n, o = 0;
  snprintf(tmp, sizeof tmp, "%.0f", v);
  n = strlen(tmp);
  for (size_t i = 0; i < n && o + 2 < cap; i++) {
    buf[o++] = tmp[i];
    if (tmp[i] != '-' && (n - i - 1) % 3 == 0 && i + 1 < n)
      buf[o++] = ',';
  }
  buf[o] = '\0';
  return buf;
}

static int ok(const bench_row *row, int w) {
  return row != NULL && row->have[w] && !row->r[w].failed;
}

/* The store's figure relative to mapkv's, > 1 = better than mapkv; 0 if
 * there is no comparison. */
static double ratio(const bench_row *rows, size_t n, const bench_row *row,
                    int w) {
  const bench_row *mk = NULL;
  double a, b;
  for (size_t i = 0; i < n; i++)
    if (strcmp(rows[i].name, "mapkv") == 0)
      mk = &rows[i];
  if (!ok(mk, w) || !ok(row, w))
    return 0;
  a = row->r[w].value;
  b = mk->r[w].value;
  if (a <= 0 || b <= 0)
    return 0;
  return (w == W_OPEN || w == W_SIZE || w == W_RSS) ? b / a : a / b;
}

static const char *unit_of(int w) {
  switch (w) {
  case W_OPEN:
    return "s";
  case W_SIZE:
  case W_RSS:
    return "bytes";
  case W_FILLSYNC_EMPTY:
  case W_FILLSYNC:
  case W_FILLSYNC_MT:
    return "commits/s";
  default:
    return "ops/s";
  }
}

/* Bytes per commit in KiB, or "-" when unknown. */
static const char *kib(double bytes, char *buf, size_t cap) {
  if (bytes < 0)
    snprintf(buf, cap, "-");
  else
    snprintf(buf, cap, "%.1f", bytes / 1024.0);
  return buf;
}

static const bench_row *find_row(const bench_row *rows, size_t n,
                                 const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(rows[i].name, name) == 0)
      return &rows[i];
  return NULL;
}

/* ---- text ---------------------------------------------------------------- */

static void text_row(const bench_config *cfg, const bench_row *rows, size_t n,
                     const bench_row *row, const bench_row *base, int w) {
  char a[64], b[64];
  double q;
  if (!row->have[w]) {
    printf("  %-16s  %s\n", row->name,
           row->crashed ? "FAILED: the process died" : "no result");
    return;
  }
  if (row->r[w].failed) {
    printf("  %-16s  FAILED: %s\n", row->name, row->r[w].note);
    return;
  }
  if (row->r[w].unsupported) {
    printf("  %-16s  not supported: %s\n", row->name, row->r[w].note);
    return;
  }
  q = ratio(rows, n, row, w);
  if (q > 0)
    snprintf(b, sizeof b, "%.2f", q);
  else
    snprintf(b, sizeof b, "-");
  switch (w) {
  case W_OPEN:
    printf("  %-16s  %12.6f  %8s\n", row->name, row->r[w].value, b);
    break;
  case W_SIZE: {
    double raw = (double)cfg->num * (double)(cfg->key_size + cfg->value_size);
    printf("  %-16s  %10.1f  %7.2f  %12.1f  %8s\n", row->name,
           row->r[w].value / 1048576.0, raw > 0 ? row->r[w].value / raw : 0,
           row->r[w].extra[0] / 1048576.0, b);
    break;
  }
  case W_RSS:
    printf("  %-16s  %10.1f  %10.1f  %10.1f  %8s\n", row->name,
           row->r[w].value / 1048576.0, row->r[w].extra[1] / 1048576.0,
           row->r[w].extra[0] / 1048576.0, b);
    break;
  case W_READRANDOM_MT: {
    char c[64];
    printf("  %-16s  %12s  %8s  %12s\n", row->name,
           grouped(row->r[w].value, a, sizeof a), b,
           grouped(row->r[w].per_thread, c, sizeof c));
    break;
  }
  case W_READWHILEWRITING: {
    char c[64], d[64];
    printf("  %-16s  %12s  %8s  %12s  %12s\n", row->name,
           grouped(row->r[w].value, a, sizeof a), b,
           grouped(row->r[w].per_thread, c, sizeof c),
           grouped(row->r[w].writer_ops, d, sizeof d));
    break;
  }
  case W_READPROCS: {
    char c[64], d[64], e[64], f[32];
    snprintf(f, sizeof f, "%s (%d/%d)",
             row->r[w].saw_last == row->r[w].threads ? "yes"
             : row->r[w].saw_last == 0               ? "no"
                                                     : "some",
             row->r[w].saw_last, row->r[w].threads);
    printf("  %-16s  %12s  %8s  %12s  %12s  %12s  %s\n", row->name,
           grouped(row->r[w].value, a, sizeof a), b,
           grouped(row->r[w].per_thread, c, sizeof c),
           grouped(row->r[w].writer_ops, d, sizeof d),
           grouped((double)row->r[w].new_reads, e, sizeof e), f);
    break;
  }
  case W_FILLSYNC_EMPTY:
  case W_FILLSYNC: {
    char c[32] = "-", d[32], e[32];
    if (ok(base, w) && base->r[w].value > 0)
      snprintf(c, sizeof c, "%.2f", row->r[w].value / base->r[w].value);
    printf("  %-16s  %12s  %8s  %11s  %10s  %10s\n", row->name,
           grouped(row->r[w].value, a, sizeof a), b, c,
           kib(row->r[w].wbytes, d, sizeof d),
           kib(row->r[w].dbytes, e, sizeof e));
    break;
  }
  case W_FILLSYNC_MT: {
    char c[64], d[32] = "-", e[32], f[32];
    const bench_row *one = find_row(rows, n, row->name);
    if (ok(one, W_FILLSYNC) && one->r[W_FILLSYNC].value > 0)
      snprintf(d, sizeof d, "%.2f", row->r[w].value / one->r[W_FILLSYNC].value);
    printf("  %-16s  %12s  %8s  %12s  %10s  %10s  %10s\n", row->name,
           grouped(row->r[w].value, a, sizeof a), b,
           grouped(row->r[w].per_thread, c, sizeof c), d,
           kib(row->r[w].wbytes, e, sizeof e),
           kib(row->r[w].dbytes, f, sizeof f));
    break;
  }
  default:
    printf("  %-16s  %12s  %8s\n", row->name,
           grouped(row->r[w].value, a, sizeof a), b);
    break;
  }
}

void bench_report_text(const bench_config *cfg, const bench_info *info,
                       const bench_row *rows, size_t n, const bench_row *base) {
  double raw = (double)cfg->num * (double)(cfg->key_size + cfg->value_size);
  printf("mapkv-bench: mapkv and its peers, same workloads, one run\n\n");
  printf("command : %s\n", info->command != NULL ? info->command : "?");
  printf("machine : %s, %d cores, %s RAM, %s\n", info->cpu, info->cores,
         info->memory, info->kernel);
  printf("date    : %s (load average at start: %s)\n", info->date, info->load);
  printf("scratch : %s (%s)\n", info->dir, info->fs);
  printf("data    : %llu records x (%zu-byte key + %zu-byte value) = %.1f "
         "MiB raw; fillsync %llu commits; %d readers (threads, or processes "
         "in readprocs); fillsync_mt %d writers; concurrent workloads timed "
         "over at least %.3g s; seed %llu; %.0f MiB prefaulted before each "
         "timed workload\n",
         (unsigned long long)cfg->num, cfg->key_size, cfg->value_size,
         raw / 1048576.0, (unsigned long long)cfg->sync_num, cfg->threads,
         cfg->writers, cfg->min_seconds, (unsigned long long)cfg->seed,
         (double)cfg->prefault / 1048576.0);
  if (cfg->threads + 1 > info->cores || cfg->writers > info->cores)
    printf("cores   : %d online; the %d readers (+1 writer) and %d writers "
           "share them, so no figure here\n"
           "          shows how a store scales beyond %d cores\n",
           info->cores, cfg->threads, cfg->writers, info->cores);
  if (cfg->repeat > 1)
    printf("rounds  : %d, round-robin over the stores; each figure is the "
           "median of its rounds\n",
           cfg->repeat);
  if (cfg->workloads &
      ((1u << W_FILLSYNC_EMPTY) | (1u << W_FILLSYNC) | (1u << W_FILLSYNC_MT)))
    printf("written : KiB per durable commit, 'dirtied' from /proc/self/io "
           "write_bytes (page-cache\n"
           "          bytes the store's process dirtied, whole folios), "
           "'device' from the sectors\n"
           "          written of %s (everything that reached the device "
           "meanwhile,\n"
           "          journal included, from any process)\n",
           info->device);
  printf("stores  :");
  for (size_t i = 0; i < n; i++)
    printf(" %s %s%s", rows[i].name, rows[i].version, i + 1 < n ? "," : "\n");
  printf("ratio   : every ratio compares a store with mapkv and is > 1 when "
         "the store does better than mapkv\n"
         "          (ops/s: store / mapkv; seconds and bytes: mapkv / "
         "store)\n");

  for (int w = 0; w < W_COUNT; w++) {
    if (!((cfg->workloads >> w) & 1u))
      continue;
    printf("\n%s: %s\n", bench_workload_names[w], bench_workload_about[w]);
    switch (w) {
    case W_OPEN:
      printf("  %-16s  %12s  %8s\n", "store", "seconds", "ratio");
      break;
    case W_SIZE:
      printf("  %-16s  %10s  %7s  %12s  %8s\n", "store", "MiB", "x raw",
             "apparent MiB", "ratio");
      break;
    case W_RSS:
      printf("  %-16s  %10s  %10s  %10s  %8s\n", "store", "peak MiB",
             "anon MiB", "base MiB", "ratio");
      break;
    case W_READRANDOM_MT:
      printf("  %-16s  %12s  %8s  %12s\n", "store", "reads/s", "ratio",
             "per thread");
      break;
    case W_READWHILEWRITING:
      printf("  %-16s  %12s  %8s  %12s  %12s\n", "store", "reads/s", "ratio",
             "per reader", "writes/s");
      break;
    case W_READPROCS:
      printf("  %-16s  %12s  %8s  %12s  %12s  %12s  %s\n", "store", "reads/s",
             "ratio", "per process", "writes/s", "new reads",
             "last commit seen");
      break;
    case W_FILLSYNC_EMPTY:
    case W_FILLSYNC:
      printf("  %-16s  %12s  %8s  %11s  %10s  %10s\n", "store", "commits/s",
             "ratio", "/ fdatasync", "dirtied", "device");
      break;
    case W_FILLSYNC_MT:
      printf("  %-16s  %12s  %8s  %12s  %10s  %10s  %10s\n", "store",
             "commits/s", "ratio", "per writer", "x fillsync", "dirtied",
             "device");
      break;
    default:
      printf("  %-16s  %12s  %8s\n", "store", "ops/s", "ratio");
      break;
    }
    for (size_t i = 0; i < n; i++)
      text_row(cfg, rows, n, &rows[i], base, w);
    if ((w == W_FILLSYNC || w == W_FILLSYNC_EMPTY) && base != NULL)
      text_row(cfg, rows, n, base, base, w);
    if (w == W_READPROCS)
      printf("  (new reads = gets that returned a value committed after the "
             "reader opened the store;\n   last commit seen = readers whose "
             "get after the writer's last commit returned it)\n");
    if (w == W_RSS)
      printf("  (peak = VmHWM, including mapped file pages; anon = largest "
             "RssAnon after a workload;\n   base = RSS of the child before "
             "the store was opened)\n");
  }
}

/* ---- JSON ---------------------------------------------------------------- */

static void json_str(const char *s) {
  putchar('"');
  for (; s != NULL && *s != '\0'; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      printf("\\%c", c);
    else if (c < 0x20)
      printf("\\u%04x", c);
    else
      putchar(c);
  }
  putchar('"');
}

static void json_result(const bench_row *rows, size_t n, const bench_row *row,
                        int w, int *first) {
  const bench_result *r = &row->r[w];
  double q;
  printf("%s\n    {\"store\": ", *first ? "" : ",");
  *first = 0;
  json_str(row->name);
  printf(", \"workload\": ");
  json_str(bench_workload_names[w]);
  if (!row->have[w]) {
    printf(", \"ok\": false, \"note\": ");
    json_str(row->crashed ? "the process died" : "no result");
    printf("}");
    return;
  }
  if (r->unsupported) {
    printf(", \"ok\": true, \"supported\": false, \"note\": ");
    json_str(r->note);
    printf("}");
    return;
  }
  printf(", \"ok\": %s, \"unit\": \"%s\", \"value\": %.6g",
         r->failed ? "false" : "true", unit_of(w), r->value);
  printf(", \"ops\": %llu, \"seconds\": %.6f, \"bad_values\": %llu",
         (unsigned long long)r->ops, r->seconds,
         (unsigned long long)r->bad_values);
  q = ratio(rows, n, row, w);
  if (q > 0)
    printf(", \"ratio_to_mapkv\": %.4f", q);
  if (w == W_SIZE)
    printf(", \"apparent_bytes\": %.0f", r->extra[0]);
  if (w == W_RSS)
    printf(", \"base_rss_bytes\": %.0f, \"max_anon_bytes\": %.0f", r->extra[0],
           r->extra[1]);
  if (BENCH_IS_CONCURRENT(w))
    printf(", \"threads\": %d, \"per_thread_ops_per_sec\": %.1f", r->threads,
           r->per_thread);
  if (w == W_READWHILEWRITING || w == W_READPROCS)
    printf(", \"writer_ops_per_sec\": %.1f", r->writer_ops);
  if (w == W_READPROCS)
    printf(", \"new_reads\": %llu, \"readers_saw_last_commit\": %d",
           (unsigned long long)r->new_reads, r->saw_last);
  if (BENCH_IS_DURABLE(w)) {
    printf(", \"dirtied_bytes_per_commit\": ");
    if (r->wbytes >= 0)
      printf("%.1f", r->wbytes);
    else
      printf("null");
    printf(", \"device_bytes_per_commit\": ");
    if (r->dbytes >= 0)
      printf("%.1f", r->dbytes);
    else
      printf("null");
  }
  if (r->note[0] != '\0') {
    printf(", \"note\": ");
    json_str(r->note);
  }
  printf("}");
}

void bench_report_json(const bench_config *cfg, const bench_info *info,
                       const bench_row *rows, size_t n, const bench_row *base) {
  int first = 1;
  printf("{\n  \"tool\": \"mapkv-bench\",\n  \"command\": ");
  json_str(info->command);
  printf(",\n  \"machine\": {\"cpu\": ");
  json_str(info->cpu);
  printf(", \"cores\": %d, \"memory\": ", info->cores);
  json_str(info->memory);
  printf(", \"kernel\": ");
  json_str(info->kernel);
  printf(", \"date\": ");
  json_str(info->date);
  printf(", \"loadavg\": ");
  json_str(info->load);
  printf(", \"scratch\": ");
  json_str(info->dir);
  printf(", \"filesystem\": ");
  json_str(info->fs);
  printf(", \"device\": ");
  json_str(info->device);
  printf("},\n  \"config\": {\"num\": %llu, \"sync_num\": %llu, "
         "\"key_size\": %zu, \"value_size\": %zu, \"threads\": %d, "
         "\"writers\": %d, \"min_seconds\": %.3f, "
         "\"seed\": %llu, \"batch\": %d, \"prefault_bytes\": %llu, "
         "\"repeat\": %d},\n",
         (unsigned long long)cfg->num, (unsigned long long)cfg->sync_num,
         cfg->key_size, cfg->value_size, cfg->threads, cfg->writers,
         cfg->min_seconds, (unsigned long long)cfg->seed, BENCH_BATCH,
         (unsigned long long)cfg->prefault, cfg->repeat);
  printf("  \"ratio\": \"store relative to mapkv, > 1 = better than mapkv "
         "(ops/s: store/mapkv; seconds, bytes: mapkv/store)\",\n");
  printf("  \"stores\": [");
  for (size_t i = 0; i < n; i++) {
    printf("%s{\"name\": ", i > 0 ? ", " : "");
    json_str(rows[i].name);
    printf(", \"version\": ");
    json_str(rows[i].version);
    printf("}");
  }
  printf("],\n  \"results\": [");
  for (int w = 0; w < W_COUNT; w++) {
    if (!((cfg->workloads >> w) & 1u))
      continue;
    for (size_t i = 0; i < n; i++)
      json_result(rows, n, &rows[i], w, &first);
    if ((w == W_FILLSYNC || w == W_FILLSYNC_EMPTY) && base != NULL)
      json_result(rows, n, base, w, &first);
  }
  printf("\n  ]\n}\n");
}
