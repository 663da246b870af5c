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
 * tables or JSON (report.c).
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
  W_READMISSING,
  W_MULTIREAD,
  W_READSEQ,
  W_READWHILEWRITING,
  W_DELETERANDOM,
  W_FILLSYNC,
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

typedef struct bench_config {
  uint64_t num;       /**< records (--num) */
  uint64_t sync_num;  /**< durable commits of fillsync (--sync-num) */
  size_t key_size;    /**< --key-size */
  size_t value_size;  /**< --value-size */
  int threads;        /**< readers of readwhilewriting (--threads) */
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
  uint64_t ops;        /**< operations timed */
  double seconds;      /**< wall time of the timed part */
  double value;        /**< ops/s; open: seconds; size, rss: bytes */
  double extra[2];     /**< size: apparent bytes; rss: RSS before the
                            store was opened; readwhilewriting: writer
                            ops/s */
  uint64_t bad_values; /**< reads that returned a wrong value or presence */
  char note[128];      /**< why it failed */
} bench_result;

/** Runs the selected workloads on store `bk` in directory `dir` (created
 * and removed here), writing one bench_result per workload to fd. Returns
 * 0, or 1 if anything failed. Runs in the child. */
int bench_run_store(const bench_config *cfg, const bk_vtable *bk,
                    const char *dir, int fd);

/** The write+fdatasync baseline of fillsync: cfg->sync_num appends of one
 * key+value record, each followed by fdatasync. Returns 0 or 1. */
int bench_run_fdatasync(const bench_config *cfg, const char *dir, int fd);

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
  char load[64]; /**< /proc/loadavg (1, 5, 15 min) when the run started */
  char *command; /**< the exact command line */
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
