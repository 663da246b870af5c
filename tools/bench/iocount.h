/*
 * iocount.h — bytes written to storage, as the durable workloads of
 * mapkv-bench report them per commit. Two counters, read before and after
 * the timed part:
 *  - write_bytes of /proc/self/io: the bytes of page-cache pages this
 *    process (all its threads) dirtied, charged when a page becomes dirty,
 *    whole folio by whole folio (so a store that dirties one byte of a
 *    2 MiB folio is charged 2 MiB), plus direct I/O;
 *  - the sectors written of the block device that holds the directory
 *    (/sys/dev/block/MAJ:MIN/stat, field 7, in 512-byte units): what
 *    reached the device, journal and metadata included, from every
 *    process on the machine that wrote to that device meanwhile.
 * Either may be unreadable (no procfs, a filesystem on no block device such
 * as tmpfs or overlayfs): its figure is then -1.
 */
#ifndef MAPKV_BENCH_IOCOUNT_H
#define MAPKV_BENCH_IOCOUNT_H

#include <stddef.h>
#include <stdint.h>

/** The device of one directory. */
typedef struct bench_io {
  char stat_path[96]; /**< "/sys/dev/block/M:m/stat", or "" if none */
  char name[96];      /**< "vda (254:0)", or why there is none */
} bench_io;

/** One reading of both counters (-1 where unreadable). */
typedef struct bench_io_sample {
  int64_t proc_write;  /**< write_bytes of /proc/self/io */
  int64_t dev_sectors; /**< sectors written of the device */
} bench_io_sample;

/** Finds the block device holding dir. Always fills *io (name says why
 * when there is no device); returns 0 if the device's counters are
 * readable, else -1. */
int bench_io_find(const char *dir, bench_io *io);

/** Reads both counters now. */
void bench_io_read(const bench_io *io, bench_io_sample *s);

/** Bytes per operation between two readings: *wbytes from write_bytes,
 * *dbytes from the device (-1 where either reading was unreadable or ops
 * is 0). */
void bench_io_per_op(const bench_io_sample *a, const bench_io_sample *b,
                     uint64_t ops, double *wbytes, double *dbytes);

/** Waits, at most max_seconds, until this process's write_bytes has not
 * grown for quiet_seconds: a store's background work (LSM flushes and
 * compactions after a load) would otherwise be charged to the commits
 * timed next. Returns the seconds waited. */
double bench_io_settle(double quiet_seconds, double max_seconds);

#endif /* MAPKV_BENCH_IOCOUNT_H */
