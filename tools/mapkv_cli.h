/*
 * mapkv_cli.h — what the files of the mapkv command-line tool share: the
 * command table entry, option parsing with uniform help and usage errors,
 * messages, opening stores, command-line bytes (--hex), signals, and a
 * progress indicator for long work.
 *
 * The tool uses only the public API (mapkv/mapkv.h). Exit codes, so that a
 * script can tell an answer from a failure: CLI_OK; CLI_NOTFOUND (the
 * answer is no: the key is not in the store, or verify found damage; a
 * message on stderr); CLI_USAGE (bad command line: the problem and a
 * one-line usage on stderr); CLI_FAIL (the work failed: the store could not
 * be opened or was locked, an I/O error, bad input; a message on stderr).
 * Help goes to stdout.
 */
#ifndef MAPKV_TOOLS_CLI_H
#define MAPKV_TOOLS_CLI_H

#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mapkv/mapkv.h"

#if defined(__GNUC__)
#define CLI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CLI_PRINTF(f, a)
#endif

enum {
  CLI_OK = 0,
  CLI_NOTFOUND = 1, /* get, del: no such key */
  CLI_DAMAGED = 1,  /* verify: the store is damaged */
  CLI_USAGE = 2,
  CLI_FAIL = 3
};

/** One subcommand. */
typedef struct cli_cmd {
  const char *name;                  /**< "put" */
  int (*run)(int argc, char **argv); /**< argv[0] is the command name */
  const char *args;                  /**< "[--hex] DB KEY VALUE" */
  const char *summary;               /**< one line for `mapkv --help` */
  const char *help;                  /**< the rest of `mapkv CMD --help` */
} cli_cmd;

extern const cli_cmd cli_cmd_put, cli_cmd_get, cli_cmd_del, cli_cmd_keys,
    cli_cmd_stat, cli_cmd_dump, cli_cmd_load, cli_cmd_verify, cli_cmd_recover,
    cli_cmd_compact, cli_cmd_upgrade, cli_cmd_copy;

/* ---- Command line -------------------------------------------------------- */

/**
 * getopt_long() for a command, with "-h/--help" added to what the caller
 * lists (the caller's longopts must include {"help", no_argument, 0, 'h'}
 * and optstring "h"). Returns the next option character, or -1 at the end
 * of the options; or '?' with *exit_code set: CLI_OK after printing the
 * help, CLI_USAGE after reporting a bad option.
 */
int cli_getopt(const cli_cmd *cmd, int argc, char **argv, const char *optstring,
               const struct option *longopts, int *exit_code);

/** Prints "mapkv CMD: <problem>" and the command's one-line usage to
 * stderr. @return CLI_USAGE. */
CLI_PRINTF(2, 3)
int cli_usage(const cli_cmd *cmd, const char *fmt, ...);

/** Checks that exactly `want` operands remain after the options (from
 * optind). @return 0, or CLI_USAGE after reporting the problem; names is
 * the list for the message ("DB KEY VALUE"). */
int cli_operands(const cli_cmd *cmd, int argc, char **argv, int want,
                 const char *names);

/** Prints the full help of a command to stdout. */
void cli_help(const cli_cmd *cmd);

/**
 * The bytes a command-line argument stands for: the argument itself, or with
 * hex its decoding (pairs of hex digits, either case; "" is empty).
 * @param buf  receives a malloc'd copy to free (NULL when not hex)
 * @return 0, or CLI_USAGE after reporting a bad hex string named `what`.
 */
int cli_arg_bytes(const cli_cmd *cmd, const char *arg, int hex,
                  const char *what, const uint8_t **p, size_t *n,
                  uint8_t **buf);

/**
 * The SECONDS of a --wait option: a decimal number (a fraction allowed, at
 * most 4294967) into milliseconds, rounded up.
 * @return 0, or CLI_USAGE after reporting a bad number.
 */
int cli_parse_wait(const cli_cmd *cmd, const char *arg, uint32_t *ms);

/* ---- Messages ------------------------------------------------------------ */

/** "mapkv: <message>" on stderr. @return CLI_FAIL. */
CLI_PRINTF(1, 2) int cli_fail(const char *fmt, ...);

/** "mapkv: [<context>: ]<mapkv_errmsg()>" on stderr, for a library failure
 * rc (call it before any other mapkv_* call). @return CLI_NOTFOUND for
 * MAPKV_NOTFOUND, CLI_FAIL otherwise. */
int cli_lib_fail(int rc, const char *context);

/** "mapkv: warning: <message>" on stderr. */
CLI_PRINTF(1, 2) void cli_warn(const char *fmt, ...);

/* ---- Stores -------------------------------------------------------------- */

/**
 * Opens a store with the tool's options: the format's hard key and value
 * limits (so that the tool handles any record the format allows), flags
 * MAPKV_RDONLY or MAPKV_CREATE, and the sync mode. Reports a failure.
 * @return 0 or CLI_FAIL.
 */
int cli_open(const char *path, unsigned flags, int sync_mode, mapkv_t **db);

/** cli_open() for a writer that waits up to wait_ms for another process to
 * close the store (--wait; the open option lock_timeout_ms). */
int cli_open_wait(const char *path, unsigned flags, int sync_mode,
                  uint32_t wait_ms, mapkv_t **db);

/** Closes a store opened for writing, reporting a failed final flush.
 * @return 0 or CLI_FAIL. NULL is a no-op. */
int cli_close(mapkv_t *db);

/* ---- Signals ------------------------------------------------------------- */

/** The signal caught by the handlers cli_catch_signals() installs, or 0. */
extern volatile sig_atomic_t cli_signal;

/** Catches SIGINT, SIGTERM and SIGHUP (and SIGPIPE with pipe_too) into
 * cli_signal, without SA_RESTART, so that a blocking read or write returns
 * and the command can stop cleanly. */
void cli_catch_signals(int pipe_too);

/* A bulk writer: puts are buffered and committed in batches of up to 10000
 * records or 64 MiB (load and recover use it with sync mode NONE, then
 * cli_bulk_finish() syncs once). When a batch does not fit (a full disk,
 * a full store), it is committed in halves, down to single records, so
 * that every record that fits is stored; `committed` counts the puts
 * stored, in order: the puts after it were not. */
typedef struct cli_bulk {
  mapkv_t *db;
  uint8_t *buf;       /* pending puts: [klen u32][vlen u32][key][value] */
  size_t used, cap;   /* bytes of buf */
  size_t records;     /* pending puts */
  uint64_t committed; /* puts committed so far */
} cli_bulk;

void cli_bulk_init(cli_bulk *b, mapkv_t *db);
/* Adds a put, committing the pending ones when they make a batch. 0 or a
 * library error (then `committed` says how many puts were stored). */
int cli_bulk_put(cli_bulk *b, const void *k, size_t klen, const void *v,
                 size_t vlen);
/* Commits what is pending and syncs the store. 0 or a library error. */
int cli_bulk_finish(cli_bulk *b);
/* Drops what is pending and frees the buffer. */
void cli_bulk_abort(cli_bulk *b);

/* ---- Progress ------------------------------------------------------------ */

/** A progress line on stderr ("mapkv: loading x.db: 120000 records (45%)"),
 * shown only when stderr is a terminal and the work has taken more than
 * half a second, refreshed every half second. */
typedef struct cli_progress {
  int on;             /* stderr is a terminal */
  int shown;          /* a line is on the screen */
  unsigned calls;     /* updates since the clock was last read */
  double start, next; /* monotonic seconds */
  const char *what;   /* "loading x.db" (not copied) */
  uint64_t total;     /* the final value of `done`, 0 if unknown */
} cli_progress;

/** Starts a progress report of `what`; total is the final value of the
 * `done` figure given to updates (for a percentage), or 0 if unknown. */
void cli_progress_begin(cli_progress *p, const char *what, uint64_t total);

/** Reports `records` handled so far and `done` units of the total; cheap
 * enough to call for every record. */
void cli_progress_update(cli_progress *p, uint64_t records, uint64_t done);

/** Erases the progress line if one is shown. */
void cli_progress_end(cli_progress *p);

/** A progress report for one long library call (verify, compact): a thread
 * shows the elapsed time every half second until cli_busy_end(). */
typedef struct cli_busy cli_busy;

/** Starts the report of `what` (copied); NULL when stderr is not a terminal
 * or the thread cannot start (then no report). */
cli_busy *cli_busy_begin(const char *what);

/** Stops the report and erases its line. NULL is a no-op. */
void cli_busy_end(cli_busy *b);

#endif
