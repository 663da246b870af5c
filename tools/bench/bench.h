/*
 * bench.h — what the parts of mapkv-bench share: the configuration, the
 * workloads, and the result records a backend's child process sends to the
 * parent through a pipe.
 *
 * Process layout: the parent (main.c) parses options and forks one child
 * per store (workload.c runs every selected workload on it, in one fixed
 * order) plus one child for the write+fdatasync baseline; each child
 * writes bench_result records to its pipe and exits. A child's peak RSS and
 * the page cache its files fill are thereby its own. The parent prints the
 * tables or JSON (report.c). readprocs starts, from a store's child, reader
 * processes that run this same program afresh (exec) with the hidden option
 * --readprocs-child (concurrent.c).
 *
 * Files: workload.c (keys, values, checks, the order of one store's run,
 * the single-thread workloads), concurrent.c (the workloads of several
 * threads or processes), durable.c (the durable commits and the
 * write+fdatasync baseline), iocount.c (bytes written to storage).
 */
#ifndef MAPKV_BENCH_BENCH_H
#define MAPKV_BENCH_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

/** The workloads, in the order they run and are reported. */
enum bench_workload {
  W_FILLSEQ,
  W_FILLRANDOM,
  W_OVERWRITE,
  W_READRANDOM,
  W_READRANDOM_MT,
  W_READMISSING,
  W_MULTIREAD,
  W_READSEQ,
  W_READPROCS,
  W_READWHILEWRITING,
  W_DELETERANDOM,
  W_FILLSYNC_EMPTY,
  W_FILLSYNC,
  W_FILLSYNC_MT,
  W_OPEN,
  W_SIZE,
  W_RSS,
  W_COUNT
};

/** Name of a workload as given to --workloads. */
extern const char *const bench_workload_names[W_COUNT];

/** One line of description per workload (for the report). */
extern const char *const bench_workload_about[W_COUNT];

/** Records per batch of fillseq, fillrandom and overwrite. */
#define BENCH_BATCH 1000

/** Keys per call of multireadrandom. */
#define BENCH_MULTI 32

/** Gets per read view (read transaction) in readrandom_mt, for the stores
 * that have views. */
#define BENCH_VIEW_GETS 1000

/** Seconds between two refreshes of a reader process's handle in
 * readprocs, for the stores whose read-only handles need one to see newer
 * commits (RocksDB's secondary instance: "catch up periodically"). */
#define BENCH_REFRESH_SECONDS 0.1

/** Most reader processes of readprocs. */
#define BENCH_MAX_PROCS 64

/** 1 if workload w is one that makes durable commits (and reports bytes
 * written per commit). */
#define BENCH_IS_DURABLE(w)                                                    \
  ((w) == W_FILLSYNC_EMPTY || (w) == W_FILLSYNC || (w) == W_FILLSYNC_MT)

/** 1 if workload w runs several threads or processes (and is timed over
 * at least min_seconds). */
#define BENCH_IS_CONCURRENT(w)                                                 \
  ((w) == W_READRANDOM_MT || (w) == W_READPROCS ||                             \
   (w) == W_READWHILEWRITING || (w) == W_FILLSYNC_MT)

typedef struct bench_config {
  uint64_t num;       /**< records (--num) */
  uint64_t sync_num;  /**< durable commits of fillsync and fillsync_empty,
                           and the least of fillsync_mt (--sync-num) */
  size_t key_size;    /**< --key-size */
  size_t value_size;  /**< --value-size */
  int threads;        /**< readers of readrandom_mt, readwhilewriting and
                           readprocs (processes) (--threads) */
  int writers;        /**< writer threads of fillsync_mt (--writers) */
  double min_seconds; /**< least duration of a concurrent workload
                           (--min-seconds) */
  uint64_t seed;      /**< --seed */
  unsigned workloads; /**< bit (1u << W_x) per selected workload */
  uint64_t prefault;  /**< bytes touched and freed before each workload */
  int repeat;         /**< rounds over all stores; the median is reported */
} bench_config;

/** What a child reports for one workload (sent as raw bytes: parent and
 * child are the same program). */
typedef struct bench_result {
  int workload;        /**< enum bench_workload */
  int failed;          /**< 1: an operation failed or a check did not hold */
  int unsupported;     /**< 1: the store cannot run this workload (note says
                            why); not a failure */
  int threads;         /**< threads or processes of a concurrent workload */
  uint64_t ops;        /**< operations timed */
  double seconds;      /**< wall time of the timed part */
  double value;        /**< ops/s; open: seconds; size, rss: bytes */
  double extra[2];     /**< size: apparent bytes; rss: RSS before the
                            store was opened, largest RssAnon */
  double per_thread;   /**< concurrent workloads: mean ops/s of one reader
                            or writer (thread or process) */
  double writer_ops;   /**< readwhilewriting, readprocs: the writer's
                            commits/s */
  double wbytes;       /**< durable workloads: bytes of /proc/self/io
                            write_bytes per commit (-1: unknown) */
  double dbytes;       /**< durable workloads: bytes of the device's
                            sectors written per commit (-1: unknown) */
  uint64_t new_reads;  /**< readprocs: reads that returned a value committed
                            after the reader opened the store */
  int saw_last;        /**< readprocs: readers whose get after the writer's
                            last commit returned that commit's value */
  uint64_t bad_values; /**< reads that returned a wrong value or presence */
  char note[128];      /**< why it failed, or why it is unsupported */
} bench_result;

/** Runs the selected workloads on store `bk` in directory `dir` (created
 * and removed here), writing one bench_result per workload to fd. Returns
 * 0, or 1 if anything failed. Runs in the child. */
int bench_run_store(const bench_config *cfg, const bk_vtable *bk,
                    const char *dir, int fd);

/** The write+fdatasync baseline of fillsync and fillsync_empty:
 * cfg->sync_num appends of one key+value record, each followed by
 * fdatasync, reported under both workloads. Returns 0 or 1. */
int bench_run_fdatasync(const bench_config *cfg, const char *dir, int fd);

/** The body of a reader process of readprocs (--readprocs-child IN,OUT):
 * reads its orders from fd `in`, reports to fd `out`. Returns the exit
 * code. */
int bench_readproc_main(int in, int out);

/** Removes dir and everything under it (missing is fine). 0 or -1. */
int bench_rmtree(const char *dir);

/** Seconds of a monotonic clock. */
double bench_now(void);

/** Results of every store, for the report. */
typedef struct bench_row {
  const char *name;    /**< store name */
  const char *version; /**< library version */
  int ran;             /**< the child ran (else the store was not selected) */
  int crashed;         /**< the child died or exited without its results */
  int have[W_COUNT];   /**< a result arrived for this workload */
  bench_result r[W_COUNT];
} bench_row;

/** Machine and run description, gathered by the parent. */
typedef struct bench_info {
  char cpu[128];
  int cores;
  char kernel[160];
  char memory[64];
  char date[64];
  char fs[64];
  char load[64];   /**< /proc/loadavg (1, 5, 15 min) when the run started */
  char device[96]; /**< the block device holding dir, as iocount.c finds
                        it ("vda (254:0)"), or why none */
  char *command;   /**< the exact command line */
  const char *dir;
} bench_info;

void bench_info_gather(bench_info *info, int argc, char **argv,
                       const char *dir);

/** Prints the tables (stdout). rows[0..n): the stores; base: the
 * write+fdatasync row (may be NULL). */
void bench_report_text(const bench_config *cfg, const bench_info *info,
                       const bench_row *rows, size_t n, const bench_row *base);

/** Prints the JSON document (stdout). */
void bench_report_json(const bench_config *cfg, const bench_info *info,
                       const bench_row *rows, size_t n, const bench_row *base);

#endif /* MAPKV_BENCH_BENCH_H */
