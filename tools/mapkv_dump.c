/*
 * mapkv_dump.c — `mapkv dump` and `mapkv load`: a store to and from the
 * portable text format of db_dump/db_load and mdb_dump/mdb_load (the format
 * itself is dumpfmt.c).
 *
 * dump opens the store read-only and writes the live records in file order
 * (the order they were written: a store loaded from a dump dumps in the same
 * order). SIGPIPE, SIGINT, SIGTERM and SIGHUP stop it cleanly; a closed
 * pipe exits with CLI_FAIL quietly, as mdb_dump does.
 *
 * load parses the whole header before it opens (and perhaps creates) the
 * store, then writes batches (cli_bulk: 10000 records or 64 MiB) with
 * sync mode none, and makes everything durable with one mapkv_sync() at the
 * end. On malformed input, or an interrupt, the records before the bad line
 * are committed and synced, and the message says how many there were.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "dumpfmt.h"
#include "mapkv_cli.h"

/* A mapsize= hint for mdb_load, whose default map (1 MiB in LMDB 0.9) is too
 * small for most dumps: room for LMDB's page overhead and half-full pages.
 * LMDB does not allocate the map up front, so a generous hint costs
 * nothing. */
static uint64_t lmdb_mapsize_hint(const mapkv_stats *st) {
  const uint64_t mib = 1u << 20;
  uint64_t want = st->live_bytes * 4 + st->records * 64 + 8 * mib;
  return (want + mib - 1) / mib * mib;
}

/* ---- dump ---------------------------------------------------------------- */

static int run_dump(int argc, char **argv) {
  static const struct option opts[] = {{"print", no_argument, NULL, 'p'},
                                       {"file", required_argument, NULL, 'f'},
                                       {"no-mapsize", no_argument, NULL, 'M'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const cli_cmd *cmd = &cli_cmd_dump;
  const char *file = NULL, *path;
  int format = DUMPFMT_BYTEVALUE, mapsize = 1, ch, rc, werr = 0;
  FILE *out = stdout;
  mapkv_t *db = NULL;
  mapkv_cursor_t *cur = NULL;
  mapkv_stats st;
  cli_progress prog;
  char what[300];
  uint64_t n = 0;

  while ((ch = cli_getopt(cmd, argc, argv, "pf:h", opts, &rc)) != -1) {
    if (ch == 'p')
      format = DUMPFMT_PRINT;
    else if (ch == 'f')
      file = optarg;
    else if (ch == 'M')
      mapsize = 0;
    else
      return rc;
  }
  if ((rc = cli_operands(cmd, argc, argv, 1, "DB")) != 0)
    return rc;
  path = argv[optind];
  if ((rc = cli_open(path, MAPKV_RDONLY, MAPKV_SYNC_COMMIT, &db)) != 0)
    return rc;
  if ((rc = mapkv_stat(db, &st)) != 0 ||
      (rc = mapkv_cursor_open(db, NULL, 0, &cur)) != 0) {
    rc = cli_lib_fail(rc, NULL);
    goto done;
  }
  if (file != NULL && strcmp(file, "-") != 0) {
    out = fopen(file, "w");
    if (out == NULL) {
      out = stdout;
      rc = cli_fail("%s: %s", file, strerror(errno));
      goto done;
    }
  }
  setvbuf(out, NULL, _IOFBF, 1u << 16);
  cli_catch_signals(1);
  snprintf(what, sizeof what, "dumping %s", path);
  cli_progress_begin(&prog, what, st.records);

  if (dumpfmt_write_header(out, format, mapsize ? lmdb_mapsize_hint(&st) : 0) !=
      0)
    werr = errno;
  while (werr == 0 && !cli_signal) {
    const void *k, *v;
    size_t klen, vlen;
    rc = mapkv_cursor_next(cur, &k, &klen, &v, &vlen);
    if (rc == MAPKV_NOTFOUND)
      break;
    if (rc != 0) {
      cli_progress_end(&prog);
      rc = cli_lib_fail(rc, NULL);
      goto done;
    }
    if (dumpfmt_write_item(out, format, k, klen) != 0 ||
        dumpfmt_write_item(out, format, v, vlen) != 0)
      werr = errno;
    n++;
    cli_progress_update(&prog, n, n);
  }
  if (werr == 0 && !cli_signal &&
      (dumpfmt_write_end(out) != 0 || fflush(out) != 0))
    werr = errno;
  cli_progress_end(&prog);
  rc = CLI_OK;
  if (cli_signal == SIGPIPE || werr == EPIPE) {
    rc = CLI_FAIL; /* the reader went away: nothing to say */
  } else if (cli_signal) {
    rc = cli_fail("dump interrupted after %llu records", (unsigned long long)n);
  } else if (werr != 0) {
    rc = cli_fail("writing %s: %s", file ? file : "standard output",
                  strerror(werr));
  } else if (mapkv_stat(db, &st) == 0 && st.checksum_failures > 0) {
    rc = cli_fail("%llu damaged record(s) left out of the dump (see mapkv "
                  "verify and mapkv recover)",
                  (unsigned long long)st.checksum_failures);
  }
done:
  if (out != stdout && fclose(out) != 0 && rc == CLI_OK)
    rc = cli_fail("writing %s: %s", file, strerror(errno));
  mapkv_cursor_close(cur);
  mapkv_close(db);
  return rc;
}

const cli_cmd cli_cmd_dump = {
    "dump", run_dump, "[-p] [-f FILE] DB",
    "write DB as a db_dump/mdb_dump text dump",
    "Writes the live records of DB in the portable text format of Berkeley\n"
    "DB's db_dump and LMDB's mdb_dump, which `mapkv load`, mdb_load and\n"
    "db_load read: a header (VERSION=3, format=, type=btree, and a mapsize=\n"
    "hint for mdb_load), then a key line and a value line per record, each\n"
    "starting with a space, then DATA=END. DB is opened read-only.\n"
    "\n"
    "  -p, --print      print printable characters as they are (backslash as\n"
    "                   \\\\, other bytes as \\ and two hex digits) instead "
    "of\n"
    "                   all bytes as hex pairs (format=bytevalue)\n"
    "  -f, --file FILE  write to FILE instead of standard output\n"
    "  --no-mapsize     leave out the mapsize= hint (Berkeley DB's db_load\n"
    "                   rejects header keywords it does not know)\n"
    "  -h, --help       show this help\n"
    "\n"
    "Exits 3 if a damaged record had to be left out, or if the reader of\n"
    "the output went away (quietly, as mdb_dump does).\n"};

/* ---- load ---------------------------------------------------------------- */

/* "nothing was loaded" / "the 3 records before it were loaded" into buf. */
static const char *loaded(uint64_t n, char buf[80]) {
  if (n == 0)
    snprintf(buf, 80, "nothing was loaded");
  else
    snprintf(buf, 80, "the %llu record%s before it %s loaded",
             (unsigned long long)n, n == 1 ? "" : "s", n == 1 ? "was" : "were");
  return buf;
}

static int run_load(int argc, char **argv) {
  static const struct option opts[] = {{"file", required_argument, NULL, 'f'},
                                       {"wait", required_argument, NULL, 'w'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const cli_cmd *cmd = &cli_cmd_load;
  uint32_t wait_ms = 0;
  const char *file = NULL, *name = "standard input", *path;
  FILE *in = stdin;
  dumpfmt_reader *rd = NULL;
  dumpfmt_header hdr;
  mapkv_t *db = NULL;
  cli_bulk bulk;
  uint64_t n = 0, total = 0;
  cli_progress prog;
  struct stat sb;
  char what[300], sofar[80];
  int ch, rc, prc = 0;

  while ((ch = cli_getopt(cmd, argc, argv, "f:w:h", opts, &rc)) != -1) {
    if (ch == 'f')
      file = optarg;
    else if (ch != 'w')
      return rc;
    else if ((rc = cli_parse_wait(cmd, optarg, &wait_ms)) != 0)
      return rc;
  }
  if ((rc = cli_operands(cmd, argc, argv, 1, "DB")) != 0)
    return rc;
  path = argv[optind];
  if (file != NULL && strcmp(file, "-") != 0) {
    in = fopen(file, "r");
    if (in == NULL)
      return cli_fail("%s: %s", file, strerror(errno));
    name = file;
  }
  if (fstat(fileno(in), &sb) == 0 && S_ISREG(sb.st_mode))
    total = (uint64_t)sb.st_size;
  rd = dumpfmt_reader_file(in, MAPKV_KEY_MAX, MAPKV_VALUE_MAX);
  if (rd == NULL) {
    rc = cli_fail("out of memory");
    goto done;
  }
  cli_catch_signals(0);
  if (dumpfmt_read_header(rd, &hdr) != 0) {
    rc = cli_signal ? cli_fail("load interrupted")
                    : cli_fail("%s: %s", name, dumpfmt_errmsg(rd));
    goto done;
  }
  if (hdr.duplicates)
    cli_warn("%s: the dump allows duplicate keys (duplicates=1); mapkv keeps "
             "the last value of each key",
             name);
  if ((rc = cli_open_wait(path, MAPKV_CREATE, MAPKV_SYNC_NONE, wait_ms, &db)) !=
      0)
    goto done;
  cli_bulk_init(&bulk, db);
  snprintf(what, sizeof what, "loading %s", path);
  cli_progress_begin(&prog, what, total);

  for (;;) {
    const uint8_t *k, *v;
    size_t klen, vlen;
    if (cli_signal)
      break;
    prc = dumpfmt_read_record(rd, &k, &klen, &v, &vlen);
    if (prc != 1)
      break;
    n++;
    if ((rc = cli_bulk_put(&bulk, k, klen, v, vlen)) != 0)
      goto lib_fail;
    cli_progress_update(&prog, n, dumpfmt_consumed(rd));
  }
  /* The records read so far are committed also when the input fails. */
  if ((rc = cli_bulk_finish(&bulk)) != 0)
    goto lib_fail;
  cli_progress_end(&prog);
  cli_bulk_abort(&bulk);
  rc = cli_close(db);
  db = NULL;
  if (cli_signal)
    rc = cli_fail("load interrupted; %s", loaded(bulk.committed, sofar));
  else if (prc < 0)
    rc = cli_fail("%s: %s; %s", name, dumpfmt_errmsg(rd),
                  loaded(bulk.committed, sofar));
  goto done;

lib_fail:
  cli_progress_end(&prog);
  rc = cli_lib_fail(rc, NULL);
  /* Every record up to `committed` (in input order) is stored, and made
   * durable below; loading the same input again is safe, since later
   * values replace earlier ones. */
  if (bulk.committed > 0)
    cli_fail("records 1 to %llu of the input were stored; record %llu and "
             "those after it were not: make room and load again (loading "
             "the same input again is safe)",
             (unsigned long long)bulk.committed,
             (unsigned long long)bulk.committed + 1);
  else
    cli_fail("nothing was stored: make room and load again");
  cli_bulk_abort(&bulk);
  if (db != NULL && mapkv_sync(db) != 0)
    rc = CLI_FAIL;
done:
  if (db != NULL && cli_close(db) != 0)
    rc = CLI_FAIL;
  dumpfmt_reader_free(rd);
  if (in != stdin)
    fclose(in);
  return rc;
}

const cli_cmd cli_cmd_load = {
    "load", run_load, "[-f FILE] [--wait S] DB",
    "read a text dump into DB (creates DB)",
    "Reads a dump in the text format of db_dump/mdb_dump (or `mapkv dump`)\n"
    "and stores its records in DB, replacing the values of keys DB holds\n"
    "already. Creates DB if it does not exist. Header keywords other than\n"
    "VERSION and format (type=, mapsize=, database=, duplicates=, ...) are\n"
    "accepted and ignored; the input must hold one database.\n"
    "\n"
    "  -f, --file FILE     read FILE instead of standard input\n"
    "  -w, --wait SECONDS  if another process has DB open for writing, wait\n"
    "                      up to SECONDS for it to close it\n"
    "  -h, --help          show this help\n"
    "\n"
    "Malformed input stops the load with the line number and exit status 3;\n"
    "the records before the bad line are kept.\n"};
