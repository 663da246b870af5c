/*
 * concurrent.c — the read workloads of several threads or processes:
 * readrandom_mt (reader threads alone), readwhilewriting (reader threads
 * and one writer thread) and readprocs (reader processes and the store's
 * process writing).
 *
 * Timing: each reader times itself (workload.h, bench_more): it does its
 * share of num gets and goes on until at least --min-seconds have passed
 * since its own start, so that no figure comes from a run too short to
 * time (a reader that ran before the others had started would otherwise
 * make the whole run look instantaneous). The figure is all gets over the
 * wall time from the first reader's start to the last one's end.
 *
 * Checks: every get's answer is checked against the generation each record
 * had when the readers started, or the generation the workload's writer
 * writes (a reader may see either, never anything else).
 *
 * readprocs runs its readers as new processes of this program (fork, then
 * exec of /proc/self/exe with --readprocs-child IN,OUT), each with a fresh
 * address space in which its store's library opens the store read-only
 * from scratch, as another program would: a library's state is not copied
 * from the writer's process, which LMDB and SQLite forbid. Protocol over
 * two pipes per reader: the store's process sends an order (the
 * configuration, the store, the generations of every record); the reader
 * opens the store and answers READY; on GO it reads for its share and at
 * least --min-seconds, counting the gets that returned a value written
 * after its open (the writer starts writing only when every reader is
 * READY), and answers DONE; the writer then commits one last put of a
 * value no one has seen and sends PROBE with its key; each reader gets
 * that key once more (after a refresh, for stores that need one) and
 * answers whether it saw the last commit.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "workload.h"

/* ---- readrandom_mt ------------------------------------------------------- */

typedef struct mt_ctx {
  run *r;
  bench_result *res;
  bench_gate gate;
  pthread_mutex_t mu; /* guards res */
  uint64_t quota;
} mt_ctx;

typedef struct mt_thread {
  mt_ctx *c;
  uint64_t seed;
  bench_span span;
} mt_thread;

static void mt_fail(mt_ctx *c, const char *why) {
  pthread_mutex_lock(&c->mu);
  c->res->failed = 1;
  bench_note(c->res, why);
  pthread_mutex_unlock(&c->mu);
}

static void *mt_read(void *arg) {
  mt_thread *me = arg;
  mt_ctx *c = me->c;
  run *r = c->r;
  const bk_vtable *bk = r->bk;
  void *rd = bk->reader_open(r->db);
  char *k = malloc(r->g.ks);
  uint8_t *buf = malloc(r->g.vs + 64);
  uint64_t s = me->seed, done = 0;
  int in_view = 0, failed = rd == NULL || k == NULL || buf == NULL;
  double t0;
  if (!bench_gate_wait(&c->gate))
    failed = 1;
  t0 = bench_now();
  me->span.t0 = t0;
  while (!failed && bench_more(done, c->quota, t0, r->cfg->min_seconds, 63)) {
    uint64_t idx = bench_below(&s, r->n);
    size_t vl = 0;
    const char *why;
    int rc;
    if (bk->view_begin != NULL && !in_view) {
      if (bk->view_begin(rd) != 0) {
        failed = 1;
        break;
      }
      in_view = 1;
    }
    bench_make_key(&r->g, 2 * idx, k);
    rc = bk->get(rd, k, r->g.ks, buf, r->g.vs + 64, &vl);
    if (rc < 0) {
      failed = 1;
      break;
    }
    why = bench_read_wrong(&r->g, r->gen[idx], idx, rc == 1, buf, vl);
    if (why != NULL) {
      pthread_mutex_lock(&c->mu);
      bench_bad(r, c->res, 2 * idx, why);
      pthread_mutex_unlock(&c->mu);
    }
    done++;
    if (in_view && done % BENCH_VIEW_GETS == 0) {
      in_view = 0;
      if (bk->view_end(rd) != 0)
        failed = 1;
    }
  }
  if (in_view && bk->view_end(rd) != 0)
    failed = 1;
  me->span.t1 = bench_now();
  me->span.ops = done;
  if (failed)
    mt_fail(c, "a reader failed");
  if (rd != NULL)
    bk->reader_close(rd);
  free(k);
  free(buf);
  return NULL;
}

/* Starts n threads running fn on args[i] (of size `size`) behind gate;
 * they go once all are started. Returns the number started (all of them,
 * or the gate told the started ones to give up). */
static int start_threads(pthread_t *th, int n, void *(*fn)(void *), void *args,
                         size_t size, bench_gate *gate) {
  int started = 0;
  for (int i = 0; i < n; i++) {
    if (pthread_create(&th[i], NULL, fn, (char *)args + (size_t)i * size) != 0)
      break;
    started++;
  }
  bench_gate_open(gate, started == n);
  return started;
}

void bench_read_random_mt(run *r, bench_result *res) {
  int t = r->cfg->threads, started;
  mt_ctx c;
  mt_thread *me = calloc((size_t)t, sizeof *me);
  pthread_t *th = calloc((size_t)t, sizeof *th);
  bench_span *spans = calloc((size_t)t, sizeof *spans);
  if (me == NULL || th == NULL || spans == NULL) {
    res->failed = 1;
    bench_note(res, "out of memory");
    goto out;
  }
  memset(&c, 0, sizeof c);
  c.r = r;
  c.res = res;
  c.quota = r->n / (uint64_t)t > 0 ? r->n / (uint64_t)t : 1;
  bench_gate_init(&c.gate);
  pthread_mutex_init(&c.mu, NULL);
  for (int i = 0; i < t; i++) {
    me[i].c = &c;
    me[i].seed = r->cfg->seed ^ (0x7000u + (unsigned)i);
  }
  started = start_threads(th, t, mt_read, me, sizeof *me, &c.gate);
  for (int i = 0; i < started; i++) {
    pthread_join(th[i], NULL);
    spans[i] = me[i].span;
  }
  if (started != t) {
    res->failed = 1;
    bench_note(res, "could not start the threads");
  } else {
    bench_spans(res, spans, t);
  }
  pthread_mutex_destroy(&c.mu);
  bench_gate_destroy(&c.gate);
out:
  free(me);
  free(th);
  free(spans);
}

/* ---- readwhilewriting ------------------------------------------------------
 * Readers check against the generation every record had before (base[],
 * a copy: the writer changes r->gen) or the writer's generation GEN_RWW. */

typedef struct rww {
  run *r;
  bench_gate gate;
  atomic_int stop;
  const uint8_t *base;
  uint64_t quota;
  pthread_mutex_t mu; /* guards res (bad, failed) */
  bench_result *res;
  uint64_t writes;
  bench_span wspan;
  int writer_failed;
} rww;

typedef struct rww_reader {
  rww *w;
  uint64_t seed;
  bench_span span;
} rww_reader;

/* Right for a record whose generation was base, or overwritten with gen
 * since. */
static const char *either_wrong(const kvgen *g, unsigned base, unsigned gen,
                                uint64_t idx, int found, const uint8_t *buf,
                                size_t vl) {
  const char *why = bench_read_wrong(g, base, idx, found, buf, vl);
  if (why != NULL && found && bench_value_ok(g, 2 * idx, gen, buf, vl))
    why = NULL;
  return why;
}

static void *rww_read(void *arg) {
  rww_reader *me = arg;
  rww *w = me->w;
  run *r = w->r;
  void *rd = r->bk->reader_open(r->db);
  char *k = malloc(r->g.ks);
  uint8_t *buf = malloc(r->g.vs + 64);
  uint64_t s = me->seed, done = 0;
  int failed = rd == NULL || k == NULL || buf == NULL;
  double t0;
  if (!bench_gate_wait(&w->gate))
    failed = 1;
  t0 = me->span.t0 = bench_now();
  while (!failed && bench_more(done, w->quota, t0, r->cfg->min_seconds, 63)) {
    uint64_t idx = bench_below(&s, r->n);
    size_t vl = 0;
    const char *why;
    int rc;
    bench_make_key(&r->g, 2 * idx, k);
    rc = r->bk->get(rd, k, r->g.ks, buf, r->g.vs + 64, &vl);
    if (rc < 0) {
      failed = 1;
      break;
    }
    why = either_wrong(&r->g, w->base[idx], GEN_RWW, idx, rc == 1, buf, vl);
    if (why != NULL) {
      pthread_mutex_lock(&w->mu);
      bench_bad(r, w->res, 2 * idx, why);
      pthread_mutex_unlock(&w->mu);
    }
    done++;
  }
  me->span.t1 = bench_now();
  me->span.ops = done;
  if (failed) {
    pthread_mutex_lock(&w->mu);
    w->res->failed = 1;
    bench_note(w->res, "a reader failed");
    pthread_mutex_unlock(&w->mu);
  }
  if (rd != NULL)
    r->bk->reader_close(rd);
  free(k);
  free(buf);
  return NULL;
}

static void *rww_write(void *arg) {
  rww *w = arg;
  run *r = w->r;
  char *k = malloc(r->g.ks);
  uint8_t *v = malloc(r->g.vs + 1);
  uint64_t s = r->cfg->seed ^ 0x4444;
  if (!bench_gate_wait(&w->gate) || k == NULL || v == NULL) {
    w->writer_failed = 1;
  } else {
    w->wspan.t0 = bench_now();
    while (!atomic_load(&w->stop)) {
      uint64_t idx = bench_below(&s, r->n);
      bench_make_key(&r->g, 2 * idx, k);
      bench_make_value(&r->g, 2 * idx, GEN_RWW, v);
      if (r->bk->put(r->db, k, r->g.ks, v, r->g.vs) != 0) {
        w->writer_failed = 1;
        break;
      }
      r->gen[idx] = GEN_RWW; /* readers read base[], not gen[] */
      w->writes++;
    }
    w->wspan.t1 = bench_now();
  }
  free(k);
  free(v);
  return NULL;
}

void bench_read_while_writing(run *r, bench_result *res) {
  int t = r->cfg->threads, started;
  rww w;
  rww_reader *rd = calloc((size_t)t, sizeof *rd);
  pthread_t *th = calloc((size_t)t + 1, sizeof *th);
  bench_span *spans = calloc((size_t)t, sizeof *spans);
  uint8_t *base = malloc((size_t)r->n + 1);
  if (rd == NULL || th == NULL || spans == NULL || base == NULL) {
    res->failed = 1;
    bench_note(res, "out of memory");
    goto out;
  }
  memcpy(base, r->gen, (size_t)r->n);
  memset(&w, 0, sizeof w);
  w.r = r;
  w.res = res;
  w.base = base;
  w.quota = r->n / (uint64_t)t > 0 ? r->n / (uint64_t)t : 1;
  pthread_mutex_init(&w.mu, NULL);
  bench_gate_init(&w.gate);
  atomic_init(&w.stop, 0);
  for (int i = 0; i < t; i++) {
    rd[i].w = &w;
    rd[i].seed = r->cfg->seed ^ (0x1000u + (unsigned)i);
  }
  started = 0;
  for (int i = 0; i < t; i++) {
    if (pthread_create(&th[i], NULL, rww_read, &rd[i]) != 0)
      break;
    started++;
  }
  if (started == t && pthread_create(&th[t], NULL, rww_write, &w) == 0) {
    bench_gate_open(&w.gate, 1);
  } else {
    bench_gate_open(&w.gate, 0);
    for (int i = 0; i < started; i++)
      pthread_join(th[i], NULL);
    res->failed = 1;
    bench_note(res, "could not start the threads");
    goto done;
  }
  for (int i = 0; i < t; i++) {
    pthread_join(th[i], NULL);
    spans[i] = rd[i].span;
  }
  atomic_store(&w.stop, 1);
  pthread_join(th[t], NULL);
  bench_spans(res, spans, t);
  if (w.wspan.t1 > w.wspan.t0)
    res->writer_ops = (double)w.writes / (w.wspan.t1 - w.wspan.t0);
  if (w.writer_failed) {
    res->failed = 1;
    bench_note(res, "the writer failed");
  }
done:
  bench_gate_destroy(&w.gate);
  pthread_mutex_destroy(&w.mu);
out:
  free(rd);
  free(th);
  free(spans);
  free(base);
}

/* ---- readprocs: the store's process (the writer) ------------------------- */

#define RP_MAGIC 0x6d6b7270u /* "mkrp" */

/* What a reader process is told first, followed by n generation bytes. */
typedef struct rp_order {
  uint32_t magic;
  int index; /* of the reader, for its random seed */
  bench_config cfg;
  char store[32];
  char dir[4096];
} rp_order;

enum { RP_READY = 1, RP_DONE, RP_PROBED, RP_FAILED };
enum { RP_GO = 1, RP_PROBE, RP_QUIT };

/* What a reader process sends back. */
typedef struct rp_msg {
  int kind; /* RP_READY, RP_DONE, RP_PROBED, RP_FAILED */
  int saw;  /* RP_PROBED: the get returned the last commit's value */
  bench_span span;
  uint64_t new_reads;
  uint64_t bad;
  char note[96];
} rp_msg;

/* What the store's process sends. */
typedef struct rp_cmd {
  int kind; /* RP_GO, RP_PROBE, RP_QUIT */
  uint64_t idx;
} rp_cmd;

/* Writes all of buf, or -1 (EPIPE when the reader died). */
static int write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Reads all of buf, or -1 (EOF or error). */
static int read_all(int fd, void *buf, size_t len) {
  char *p = buf;
  while (len > 0) {
    ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Reads one message of reader i, waiting at most until `deadline`. 0, or
 * -1 with why set. */
static int rp_recv(int fd, rp_msg *m, double deadline, const char **why) {
  struct pollfd p = {fd, POLLIN, 0};
  for (;;) {
    double left = deadline - bench_now();
    int rc;
    if (left <= 0) {
      *why = "a reader process did not answer in time";
      return -1;
    }
    rc = poll(&p, 1, (int)(left * 1000) + 1);
    if (rc < 0 && errno == EINTR)
      continue;
    if (rc > 0)
      break;
    if (rc < 0) {
      *why = "poll failed";
      return -1;
    }
  }
  if (read_all(fd, m, sizeof *m) != 0) {
    *why = "a reader process died";
    return -1;
  }
  if (m->kind == RP_FAILED) {
    *why = "a reader process failed";
    return -1;
  }
  return 0;
}

/* A reader process: this program again, from the start, reading its
 * orders from cmd_fd and answering on msg_fd (both close-on-exec here). */
static pid_t rp_spawn(int cmd_fd, int msg_fd) {
  char fds[32], self_path[4096];
  ssize_t n;
  pid_t pid;
  /* The program's own path, read before the fork: exec'ing /proc/self/exe
   * would start the tool a program runs under (valgrind), not this one. */
  n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
  if (n <= 0)
    return -1;
  self_path[n] = '\0';
  snprintf(fds, sizeof fds, "%d,%d", cmd_fd, msg_fd);
  fflush(NULL);
  pid = fork();
  if (pid == 0) {
    /* Only async-signal-safe calls until the exec (the store's libraries
     * may have threads). Nothing of the writer's process but the two
     * pipes goes through the exec: its store's descriptors stay its own. */
    for (int fd = 3; fd < 1024; fd++)
      fcntl(fd, F_SETFD, fd == cmd_fd || fd == msg_fd ? 0 : FD_CLOEXEC);
    execl(self_path, "mapkv-bench", "--readprocs-child", fds, (char *)NULL);
    _exit(127);
  }
  return pid;
}

void bench_read_procs(run *r, bench_result *res) {
  const bk_vtable *bk = r->bk;
  int procs = r->cfg->threads, nstarted = 0, ndone = 0, failed = 0;
  pid_t pid[BENCH_MAX_PROCS];
  int cmd[BENCH_MAX_PROCS], msg[BENCH_MAX_PROCS], done[BENCH_MAX_PROCS];
  bench_span spans[BENCH_MAX_PROCS];
  char *k = malloc(r->g.ks);
  uint8_t *v = malloc(r->g.vs + 1);
  rp_order order;
  const char *why = NULL;
  uint64_t s = r->cfg->seed ^ 0x9999, writes = 0;
  double deadline, wt0 = 0, wt1 = 0;
  void (*old_pipe)(int);
  if (bk->open_ro == NULL) {
    res->unsupported = 1;
    bench_note(res, bk->no_ro != NULL ? bk->no_ro : "no read-only open");
    free(k);
    free(v);
    return;
  }
  if (k == NULL || v == NULL || procs > BENCH_MAX_PROCS) {
    res->failed = 1;
    bench_note(res, k == NULL || v == NULL ? "out of memory"
                                           : "too many reader processes");
    free(k);
    free(v);
    return;
  }
  /* A reader that dies must not kill the writer with SIGPIPE. */
  old_pipe = signal(SIGPIPE, SIG_IGN);
  memset(&order, 0, sizeof order);
  order.magic = RP_MAGIC;
  memcpy(&order.cfg, r->cfg, sizeof order.cfg);
  snprintf(order.store, sizeof order.store, "%s", bk->name);
  snprintf(order.dir, sizeof order.dir, "%s", r->dir);
  memset(spans, 0, sizeof spans);
  memset(done, 0, sizeof done);
  for (int i = 0; i < procs; i++) {
    int a[2], b[2];
    if (pipe2(a, O_CLOEXEC) != 0)
      break;
    if (pipe2(b, O_CLOEXEC) != 0) {
      close(a[0]);
      close(a[1]);
      break;
    }
    pid[i] = rp_spawn(a[0], b[1]);
    close(a[0]);
    close(b[1]);
    if (pid[i] < 0) {
      close(a[1]);
      close(b[0]);
      break;
    }
    cmd[i] = a[1];
    msg[i] = b[0];
    nstarted++;
    order.index = i;
    if (write_all(cmd[i], &order, sizeof order) != 0 ||
        write_all(cmd[i], r->gen, (size_t)r->n) != 0) {
      why = "could not send a reader process its orders";
      failed = 1;
      break;
    }
  }
  if (!failed && nstarted != procs) {
    why = "could not start the reader processes";
    failed = 1;
  }
  /* Every reader has its store open before the first commit. */
  deadline = bench_now() + 60;
  for (int i = 0; i < nstarted && !failed; i++) {
    rp_msg m = {0};
    if (rp_recv(msg[i], &m, deadline, &why) != 0 || m.kind != RP_READY)
      failed = 1;
    if (failed && m.kind == RP_FAILED)
      fprintf(stderr, "mapkv-bench: %s: readprocs: %s\n", bk->name, m.note);
  }
  for (int i = 0; i < nstarted && !failed; i++) {
    rp_cmd c;
    memset(&c, 0, sizeof c); /* padding too: it goes down a pipe */
    c.kind = RP_GO;
    if (write_all(cmd[i], &c, sizeof c) != 0) {
      why = "a reader process died";
      failed = 1;
    }
  }
  /* The writer: single puts until every reader is done. */
  wt0 = bench_now();
  deadline = wt0 + 120 + 10 * r->cfg->min_seconds;
  while (!failed && ndone < procs) {
    uint64_t idx = bench_below(&s, r->n);
    bench_make_key(&r->g, 2 * idx, k);
    bench_make_value(&r->g, 2 * idx, GEN_PROCS, v);
    if (bk->put(r->db, k, r->g.ks, v, r->g.vs) != 0) {
      why = "the writer failed";
      failed = 1;
      break;
    }
    r->gen[idx] = GEN_PROCS;
    writes++;
    if (writes % 32 == 0) {
      struct pollfd p[BENCH_MAX_PROCS];
      for (int i = 0; i < procs; i++) {
        p[i].fd = done[i] ? -1 : msg[i];
        p[i].events = POLLIN;
        p[i].revents = 0;
      }
      if (poll(p, (nfds_t)procs, 0) > 0) {
        for (int i = 0; i < procs && !failed; i++) {
          rp_msg m = {0};
          if (p[i].revents == 0)
            continue;
          if (rp_recv(msg[i], &m, bench_now() + 10, &why) != 0 ||
              m.kind != RP_DONE) {
            if (m.kind == RP_FAILED)
              fprintf(stderr, "mapkv-bench: %s: readprocs: %s\n", bk->name,
                      m.note);
            failed = 1;
            break;
          }
          done[i] = 1;
          ndone++;
          spans[i] = m.span;
          res->new_reads += m.new_reads;
          res->bad_values += m.bad;
        }
      }
      if (bench_now() > deadline) {
        why = "the reader processes did not finish in time";
        failed = 1;
      }
    }
  }
  wt1 = bench_now();
  /* The last commit, then every reader looks for it. */
  if (!failed) {
    uint64_t idx = bench_below(&s, r->n);
    rp_cmd c;
    memset(&c, 0, sizeof c);
    c.kind = RP_PROBE;
    c.idx = idx;
    bench_make_key(&r->g, 2 * idx, k);
    bench_make_value(&r->g, 2 * idx, GEN_PROBE, v);
    if (bk->put(r->db, k, r->g.ks, v, r->g.vs) != 0) {
      why = "the writer failed";
      failed = 1;
    } else {
      r->gen[idx] = GEN_PROBE;
    }
    for (int i = 0; i < procs && !failed; i++)
      if (write_all(cmd[i], &c, sizeof c) != 0) {
        why = "a reader process died";
        failed = 1;
      }
    deadline = bench_now() + 60;
    for (int i = 0; i < procs && !failed; i++) {
      rp_msg m = {0};
      if (rp_recv(msg[i], &m, deadline, &why) != 0 || m.kind != RP_PROBED)
        failed = 1;
      else {
        res->saw_last += m.saw;
        res->bad_values += m.bad;
      }
    }
  }
  for (int i = 0; i < nstarted; i++) {
    int status = 0;
    close(cmd[i]); /* EOF: a reader still waiting quits */
    close(msg[i]);
    if (failed)
      kill(pid[i], SIGKILL); /* a reader of this workload, started above */
    while (waitpid(pid[i], &status, 0) < 0 && errno == EINTR)
      ;
    if (!failed && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
      why = "a reader process exited with an error";
      failed = 1;
    }
  }
  signal(SIGPIPE, old_pipe);
  if (failed) {
    res->failed = 1;
    bench_note(res, why != NULL ? why : "failed");
  } else {
    bench_spans(res, spans, procs);
    if (wt1 > wt0)
      res->writer_ops = (double)writes / (wt1 - wt0);
  }
  free(k);
  free(v);
}

/* ---- readprocs: a reader process ----------------------------------------- */

static void rp_fail(int out, const char *what) {
  rp_msg m;
  memset(&m, 0, sizeof m);
  m.kind = RP_FAILED;
  snprintf(m.note, sizeof m.note, "%s", what);
  write_all(out, &m, sizeof m);
}

int bench_readproc_main(int in, int out) {
  rp_order o;
  rp_msg m;
  rp_cmd c;
  const bk_vtable *bk = NULL;
  kvgen g;
  bk_options opts;
  uint8_t *gen = NULL, *buf = NULL;
  char *k = NULL;
  void *db = NULL, *rd = NULL;
  uint64_t s, done = 0;
  double t0, refreshed;
  int rc = 1;
  memset(&m, 0, sizeof m);
  memset(&g, 0, sizeof g);
  if (read_all(in, &o, sizeof o) != 0 || o.magic != RP_MAGIC) {
    fprintf(stderr, "mapkv-bench: --readprocs-child: no orders\n");
    return 1;
  }
  o.store[sizeof o.store - 1] = o.dir[sizeof o.dir - 1] = '\0';
  for (size_t i = 0; bk_all[i] != NULL; i++)
    if (strcmp(bk_all[i]->name, o.store) == 0)
      bk = bk_all[i];
  gen = malloc((size_t)o.cfg.num + 1);
  k = malloc(o.cfg.key_size);
  buf = malloc(o.cfg.value_size + 64);
  if (bk == NULL || bk->open_ro == NULL || gen == NULL || k == NULL ||
      buf == NULL || bench_kvgen_init(&g, &o.cfg) != 0 ||
      read_all(in, gen, (size_t)o.cfg.num) != 0) {
    rp_fail(out, "could not start");
    goto out;
  }
  memset(&opts, 0, sizeof opts);
  opts.expected = o.cfg.num;
  opts.key_size = o.cfg.key_size;
  opts.value_size = o.cfg.value_size;
  if (bk->open_ro(o.dir, &opts, &db) != 0) {
    db = NULL;
    rp_fail(out, "could not open the store read-only");
    goto out;
  }
  if ((rd = bk->reader_open(db)) == NULL) {
    rp_fail(out, "could not open a reader");
    goto out;
  }
  m.kind = RP_READY;
  if (write_all(out, &m, sizeof m) != 0 || read_all(in, &c, sizeof c) != 0 ||
      c.kind != RP_GO)
    goto out; /* the writer gave up */

  s = o.cfg.seed ^ (0x8000u + (unsigned)o.index);
  t0 = refreshed = m.span.t0 = bench_now();
  while (bench_more(done, o.cfg.num / (uint64_t)o.cfg.threads, t0,
                    o.cfg.min_seconds, 63)) {
    uint64_t idx = bench_below(&s, o.cfg.num);
    size_t vl = 0;
    int got;
    if (bk->ro_refresh != NULL && done % 64 == 0 &&
        bench_now() - refreshed >= BENCH_REFRESH_SECONDS) {
      if (bk->ro_refresh(db) != 0) {
        rp_fail(out, "refresh failed");
        goto out;
      }
      refreshed = bench_now();
    }
    bench_make_key(&g, 2 * idx, k);
    got = bk->get(rd, k, o.cfg.key_size, buf, o.cfg.value_size + 64, &vl);
    if (got < 0) {
      rp_fail(out, "get failed");
      goto out;
    }
    if (got == 1 && gen[idx] != GEN_PROCS &&
        bench_value_ok(&g, 2 * idx, GEN_PROCS, buf, vl))
      m.new_reads++;
    else if (bench_read_wrong(&g, gen[idx], idx, got == 1, buf, vl) != NULL &&
             m.bad++ < 5)
      fprintf(stderr, "mapkv-bench: %s: readprocs: key number %llu: %s\n",
              bk->name, (unsigned long long)(2 * idx),
              bench_read_wrong(&g, gen[idx], idx, got == 1, buf, vl));
    done++;
  }
  m.span.t1 = bench_now();
  m.span.ops = done;
  m.kind = RP_DONE;
  if (write_all(out, &m, sizeof m) != 0 || read_all(in, &c, sizeof c) != 0 ||
      c.kind != RP_PROBE || c.idx >= o.cfg.num)
    goto out;

  /* The writer's last commit, made after this reader said DONE. */
  {
    size_t vl = 0;
    int got;
    if (bk->ro_refresh != NULL && bk->ro_refresh(db) != 0) {
      rp_fail(out, "refresh failed");
      goto out;
    }
    bench_make_key(&g, 2 * c.idx, k);
    got = bk->get(rd, k, o.cfg.key_size, buf, o.cfg.value_size + 64, &vl);
    if (got < 0) {
      rp_fail(out, "get failed");
      goto out;
    }
    m.bad = 0;
    m.saw = got == 1 && bench_value_ok(&g, 2 * c.idx, GEN_PROBE, buf, vl);
    if (!m.saw &&
        bench_read_wrong(&g, gen[c.idx], c.idx, got == 1, buf, vl) != NULL &&
        !(got == 1 && bench_value_ok(&g, 2 * c.idx, GEN_PROCS, buf, vl))) {
      m.bad = 1;
      fprintf(stderr,
              "mapkv-bench: %s: readprocs: key number %llu: wrong "
              "answer after the last commit\n",
              bk->name, (unsigned long long)(2 * c.idx));
    }
    m.kind = RP_PROBED;
    if (write_all(out, &m, sizeof m) == 0)
      rc = 0;
  }
out:
  if (rd != NULL)
    bk->reader_close(rd);
  if (db != NULL && bk->close(db) != 0)
    rc = 1;
  free(gen);
  free(k);
  free(buf);
  free(g.patterns);
  return rc;
}
