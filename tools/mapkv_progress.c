/*
 * mapkv_progress.c — progress lines on stderr for long work (load, dump,
 * verify, recover, compact).
 *
 * Shown only when stderr is a terminal, never before the work has run for
 * half a second, and refreshed at most every half second; the line is
 * rewritten in place ("\r", erase to the end of the line) and erased at the
 * end, so that it never mixes with output or messages. Loops report through
 * cli_progress_update(); single long library calls through a thread
 * (cli_busy) that shows the elapsed time.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mapkv_cli.h"

#define PERIOD 0.5 /* seconds between refreshes, and before the first */
#define ERASE  "\r\033[K"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void cli_progress_begin(cli_progress *p, const char *what, uint64_t total) {
  memset(p, 0, sizeof *p);
  p->on = isatty(STDERR_FILENO);
  p->what = what;
  p->total = total;
  if (p->on) {
    p->start = now();
    p->next = p->start + PERIOD;
  }
}

void cli_progress_update(cli_progress *p, uint64_t records, uint64_t done) {
  double t;
  /* Reading the clock for every record would cost more than the record. */
  if (!p->on || (++p->calls & 15u) != 0)
    return;
  t = now();
  if (t < p->next)
    return;
  p->next = t + PERIOD;
  if (p->total > 0) {
    unsigned pct = done >= p->total ? 100u : (unsigned)(done * 100 / p->total);
    fprintf(stderr, ERASE "mapkv: %s: %llu records (%u%%)", p->what,
            (unsigned long long)records, pct);
  } else {
    fprintf(stderr, ERASE "mapkv: %s: %llu records, %.0f s", p->what,
            (unsigned long long)records, t - p->start);
  }
  fflush(stderr);
  p->shown = 1;
}

void cli_progress_end(cli_progress *p) {
  if (p->shown) {
    fputs(ERASE, stderr);
    fflush(stderr);
  }
  p->shown = 0;
}

/* ---- One long call ------------------------------------------------------- */

struct cli_busy {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;
  double start;
  char what[256];
};

static void *busy_main(void *arg) {
  cli_busy *b = arg;
  int shown = 0;
  pthread_mutex_lock(&b->mu);
  while (!b->stop) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += (long)(PERIOD * 1e9);
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    while (!b->stop &&
           pthread_cond_timedwait(&b->cv, &b->mu, &until) != ETIMEDOUT)
      ;
    if (b->stop)
      break;
    fprintf(stderr, ERASE "mapkv: %s... %.1f s", b->what, now() - b->start);
    fflush(stderr);
    shown = 1;
  }
  if (shown) {
    fputs(ERASE, stderr);
    fflush(stderr);
  }
  pthread_mutex_unlock(&b->mu);
  return NULL;
}

cli_busy *cli_busy_begin(const char *what) {
  cli_busy *b;
  if (!isatty(STDERR_FILENO))
    return NULL;
  b = calloc(1, sizeof *b);
  if (b == NULL)
    return NULL;
  snprintf(b->what, sizeof b->what, "%s", what);
  b->start = now();
  pthread_mutex_init(&b->mu, NULL);
  pthread_cond_init(&b->cv, NULL);
  if (pthread_create(&b->thread, NULL, busy_main, b) != 0) {
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
    return NULL;
  }
  return b;
}

void cli_busy_end(cli_busy *b) {
  if (b == NULL)
    return;
  pthread_mutex_lock(&b->mu);
  b->stop = 1;
  pthread_cond_signal(&b->cv);
  pthread_mutex_unlock(&b->mu);
  pthread_join(b->thread, NULL);
  pthread_cond_destroy(&b->cv);
  pthread_mutex_destroy(&b->mu);
  free(b);
}
