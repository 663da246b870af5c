/*
 * iocount.c — the write counters of iocount.h: /proc/self/io and the
 * block device's stat file, found from the st_dev of a directory.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "bench.h"
#include "iocount.h"

int bench_io_find(const char *dir, bench_io *io) {
  struct stat st;
  char path[96], line[256];
  unsigned maj, min;
  FILE *f;
  memset(io, 0, sizeof *io);
  if (stat(dir, &st) != 0) {
    snprintf(io->name, sizeof io->name, "unknown (stat failed)");
    return -1;
  }
  maj = major(st.st_dev);
  min = minor(st.st_dev);
  snprintf(path, sizeof path, "/sys/dev/block/%u:%u/stat", maj, min);
  f = fopen(path, "r");
  if (f == NULL) {
    snprintf(io->name, sizeof io->name,
             "none (device %u:%u has no block-device counters)", maj, min);
    return -1;
  }
  fclose(f);
  snprintf(io->stat_path, sizeof io->stat_path, "%s", path);
  snprintf(io->name, sizeof io->name, "%u:%u", maj, min);
  snprintf(path, sizeof path, "/sys/dev/block/%u:%u/uevent", maj, min);
  if ((f = fopen(path, "r")) != NULL) {
    while (fgets(line, sizeof line, f) != NULL) {
      if (strncmp(line, "DEVNAME=", 8) == 0) {
        line[strcspn(line, "\n")] = '\0';
        snprintf(io->name, sizeof io->name, "%.40s (%u:%u)", line + 8, maj,
                 min);
        break;
      }
    }
    fclose(f);
  }
  return 0;
}

static int64_t proc_write_bytes(void) {
  FILE *f = fopen("/proc/self/io", "r");
  char line[128];
  long long v = -1;
  if (f == NULL)
    return -1;
  while (fgets(line, sizeof line, f) != NULL)
    if (sscanf(line, "write_bytes: %lld", &v) == 1)
      break;
  fclose(f);
  return v;
}

static int64_t dev_sectors_written(const bench_io *io) {
  unsigned long long v[7];
  FILE *f;
  int n;
  if (io == NULL || io->stat_path[0] == '\0' ||
      (f = fopen(io->stat_path, "r")) == NULL)
    return -1;
  /* reads, merges, sectors, ticks; writes, merges, sectors, ... */
  n = fscanf(f, "%llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
             &v[3], &v[4], &v[5], &v[6]);
  fclose(f);
  return n == 7 ? (int64_t)v[6] : -1;
}

void bench_io_read(const bench_io *io, bench_io_sample *s) {
  s->proc_write = proc_write_bytes();
  s->dev_sectors = dev_sectors_written(io);
}

void bench_io_per_op(const bench_io_sample *a, const bench_io_sample *b,
                     uint64_t ops, double *wbytes, double *dbytes) {
  *wbytes = *dbytes = -1;
  if (ops == 0)
    return;
  if (a->proc_write >= 0 && b->proc_write >= a->proc_write)
    *wbytes = (double)(b->proc_write - a->proc_write) / (double)ops;
  if (a->dev_sectors >= 0 && b->dev_sectors >= a->dev_sectors)
    *dbytes = (double)(b->dev_sectors - a->dev_sectors) * 512.0 / (double)ops;
}

double bench_io_settle(double quiet_seconds, double max_seconds) {
  double t0 = bench_now(), quiet_since = t0;
  int64_t last = proc_write_bytes();
  const struct timespec tick = {0, 50 * 1000 * 1000};
  if (last < 0)
    return 0;
  for (;;) {
    double now;
    int64_t v;
    nanosleep(&tick, NULL);
    now = bench_now();
    v = proc_write_bytes();
    if (v != last) {
      last = v;
      quiet_since = now;
    }
    if (now - quiet_since >= quiet_seconds || now - t0 >= max_seconds)
      return now - t0;
  }
}
