/*
 * mapkv_kv.c — the single-key commands of the mapkv tool (put, get, del)
 * and the key listing (keys).
 *
 * Keys, values and prefixes on the command line are their bytes, or with
 * --hex pairs of hex digits (for binary data and for bytes a shell cannot
 * pass, such as NUL); put also takes a value from standard input or a file,
 * byte for byte. get and keys print raw bytes, or hex with --hex. Commands
 * that only read open the store read-only; put and del wait for another
 * writer with --wait.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dumpfmt.h"
#include "mapkv_cli.h"

static const struct option hex_opts[] = {{"hex", no_argument, NULL, 'x'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};

/* Parses [--hex] and exactly `want` operands. Returns -1 to go on, or the
 * exit code. */
static int parse_hex_cmd(const cli_cmd *cmd, int argc, char **argv, int want,
                         const char *names, int *hex) {
  int ch, rc;
  *hex = 0;
  while ((ch = cli_getopt(cmd, argc, argv, "xh", hex_opts, &rc)) != -1) {
    if (ch != 'x')
      return rc;
    *hex = 1;
  }
  if ((rc = cli_operands(cmd, argc, argv, want, names)) != 0)
    return rc;
  return -1;
}

/* Writes n bytes to stdout, raw or as hex and a newline. 0 or -1. */
static int print_bytes(const void *p, size_t n, int hex, int newline) {
  if (!hex) {
    if (n > 0 && fwrite(p, 1, n, stdout) != n)
      return -1;
  } else {
    char buf[3 * 1024];
    const uint8_t *s = p;
    while (n > 0) {
      size_t take = n < 1024 ? n : 1024;
      size_t len = dumpfmt_encode(DUMPFMT_BYTEVALUE, s, take, buf);
      if (fwrite(buf, 1, len, stdout) != len)
        return -1;
      s += take;
      n -= take;
    }
  }
  if (newline && putchar('\n') == EOF)
    return -1;
  return 0;
}

/* Flushes stdout, reporting a write error (also one print_bytes() met). */
static int flush_stdout(void) {
  if (fflush(stdout) != 0 || ferror(stdout))
    return cli_fail("writing to standard output: %s", strerror(errno));
  return 0;
}

/* ---- put ----------------------------------------------------------------- */

/* Reads the whole of file (NULL: standard input) into a malloc'd *buf.
 * @return 0 or CLI_FAIL (reported). */
static int read_value(const char *file, uint8_t **buf, size_t *n) {
  const char *name = file != NULL ? file : "standard input";
  int fd = STDIN_FILENO;
  size_t cap = 1u << 16, len = 0;
  struct stat sb;
  uint8_t *b = NULL;
  int rc = CLI_FAIL;

  if (file != NULL && (fd = open(file, O_RDONLY | O_CLOEXEC)) < 0)
    return cli_fail("%s: %s", file, strerror(errno));
  if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size >= 0 &&
      (uint64_t)sb.st_size < MAPKV_VALUE_MAX)
    cap = (size_t)sb.st_size + 1; /* one read more sees the end */
  for (;;) {
    ssize_t got;
    if (len == cap || b == NULL) {
      uint8_t *nb;
      if (b != NULL)
        cap = cap > MAPKV_VALUE_MAX / 2 ? (size_t)MAPKV_VALUE_MAX + 1 : cap * 2;
      if ((nb = realloc(b, cap)) == NULL) {
        cli_fail("%s: out of memory for the value", name);
        goto out;
      }
      b = nb;
    }
    got = read(fd, b + len, cap - len);
    if (got < 0 && errno == EINTR)
      continue;
    if (got < 0) {
      cli_fail("reading %s: %s", name, strerror(errno));
      goto out;
    }
    if (got == 0)
      break;
    len += (size_t)got;
    if (len > MAPKV_VALUE_MAX) {
      cli_fail("%s: more than %u bytes, the largest value a store holds", name,
               MAPKV_VALUE_MAX);
      goto out;
    }
  }
  *buf = b;
  *n = len;
  b = NULL;
  rc = 0;
out:
  free(b);
  if (fd != STDIN_FILENO)
    close(fd);
  return rc;
}

static int run_put(int argc, char **argv) {
  static const struct option opts[] = {
      {"hex", no_argument, NULL, 'x'},
      {"value-file", required_argument, NULL, 'f'},
      {"wait", required_argument, NULL, 'w'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const cli_cmd *cmd = &cli_cmd_put;
  const char *value_file = NULL;
  const uint8_t *key, *val;
  size_t klen, vlen;
  uint8_t *kbuf = NULL, *vbuf = NULL;
  mapkv_t *db = NULL;
  uint32_t wait_ms = 0;
  int hex = 0, ch, rc;

  while ((ch = cli_getopt(cmd, argc, argv, "xf:w:h", opts, &rc)) != -1) {
    if (ch == 'x')
      hex = 1;
    else if (ch == 'f')
      value_file = optarg;
    else if (ch != 'w')
      return rc;
    else if ((rc = cli_parse_wait(cmd, optarg, &wait_ms)) != 0)
      return rc;
  }
  if (value_file != NULL)
    rc = cli_operands(cmd, argc, argv, 2, "DB KEY, and the value from FILE");
  else
    rc = cli_operands(cmd, argc, argv, 3, "DB KEY VALUE");
  if (rc != 0)
    return rc;
  if ((rc = cli_arg_bytes(cmd, argv[optind + 1], hex, "KEY", &key, &klen,
                          &kbuf)) != 0)
    goto done;
  /* The value is read before the store is opened: no lock is held while
   * the input arrives. */
  if (value_file != NULL || strcmp(argv[optind + 2], "-") == 0) {
    if (value_file != NULL && strcmp(value_file, "-") == 0)
      value_file = NULL;
    if ((rc = read_value(value_file, &vbuf, &vlen)) != 0)
      goto done;
    val = vbuf;
  } else if ((rc = cli_arg_bytes(cmd, argv[optind + 2], hex, "VALUE", &val,
                                 &vlen, &vbuf)) != 0) {
    goto done;
  }
  if ((rc = cli_open_wait(argv[optind], MAPKV_CREATE, MAPKV_SYNC_COMMIT,
                          wait_ms, &db)) != 0)
    goto done;
  if ((rc = mapkv_put(db, key, klen, val, vlen)) != 0)
    rc = cli_lib_fail(rc, NULL);
  if (cli_close(db) != 0)
    rc = CLI_FAIL;
done:
  free(kbuf);
  free(vbuf);
  return rc;
}

const cli_cmd cli_cmd_put = {
    "put", run_put, "[--hex] [--wait S] [--value-file F] DB KEY [VALUE|-]",
    "store VALUE under KEY (creates DB)",
    "Stores VALUE under KEY in DB, replacing any previous value, as one\n"
    "durable commit. Creates DB if it does not exist. A VALUE of \"-\" is\n"
    "read from standard input, every byte as it is (NUL bytes included);\n"
    "with --value-file F the value is the content of F, and no VALUE is\n"
    "given. Either may hold up to 2 GiB - 1 bytes; the input is read in\n"
    "full before DB is opened.\n"
    "\n"
    "  -x, --hex              KEY (and a VALUE on the command line) are hex\n"
    "                         strings (pairs of hex digits; \"\" is empty),\n"
    "                         for binary data; values read from a file or\n"
    "                         standard input are never hex\n"
    "  -f, --value-file FILE  the value is the content of FILE (\"-\":\n"
    "                         standard input)\n"
    "  -w, --wait SECONDS     if another process has DB open for writing,\n"
    "                         wait up to SECONDS (fractions allowed) for it\n"
    "                         to close it, instead of failing at once\n"
    "  -h, --help             show this help\n"
    "\n"
    "Put \"--\" before a KEY or VALUE that starts with '-'. A value that is\n"
    "just \"-\" comes from standard input: printf - | mapkv put DB KEY -\n"};

/* ---- get ----------------------------------------------------------------- */

static int run_get(int argc, char **argv) {
  const cli_cmd *cmd = &cli_cmd_get;
  const uint8_t *key;
  const void *val;
  size_t klen, vlen;
  uint8_t *kbuf = NULL;
  mapkv_t *db = NULL;
  int hex, rc;

  if ((rc = parse_hex_cmd(cmd, argc, argv, 2, "DB KEY", &hex)) >= 0)
    return rc;
  if ((rc = cli_arg_bytes(cmd, argv[optind + 1], hex, "KEY", &key, &klen,
                          &kbuf)) != 0)
    goto done;
  if ((rc = cli_open(argv[optind], MAPKV_RDONLY, MAPKV_SYNC_COMMIT, &db)) != 0)
    goto done;
  /* The view stays valid until the close below. */
  if ((rc = mapkv_get_view(db, key, klen, &val, &vlen)) != 0)
    rc = cli_lib_fail(rc, NULL);
  else if (print_bytes(val, vlen, hex, hex) != 0 || flush_stdout() != 0)
    rc = CLI_FAIL;
  mapkv_close(db);
done:
  free(kbuf);
  return rc;
}

const cli_cmd cli_cmd_get = {
    "get", run_get, "[--hex] DB KEY", "print the value of KEY",
    "Writes the value of KEY to standard output, exactly its bytes (no\n"
    "newline is added). Exits 1 with \"key not found\" if KEY is absent.\n"
    "\n"
    "  -x, --hex   KEY is a hex string; the value is printed in hex, with a\n"
    "              newline\n"
    "  -h, --help  show this help\n"};

/* ---- del ----------------------------------------------------------------- */

static int run_del(int argc, char **argv) {
  static const struct option opts[] = {{"hex", no_argument, NULL, 'x'},
                                       {"wait", required_argument, NULL, 'w'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const cli_cmd *cmd = &cli_cmd_del;
  const uint8_t *key;
  size_t klen;
  uint8_t *kbuf = NULL;
  mapkv_t *db = NULL;
  uint32_t wait_ms = 0;
  int hex = 0, ch, rc;

  while ((ch = cli_getopt(cmd, argc, argv, "xw:h", opts, &rc)) != -1) {
    if (ch == 'x')
      hex = 1;
    else if (ch != 'w')
      return rc;
    else if ((rc = cli_parse_wait(cmd, optarg, &wait_ms)) != 0)
      return rc;
  }
  if ((rc = cli_operands(cmd, argc, argv, 2, "DB KEY")) != 0)
    return rc;
  if ((rc = cli_arg_bytes(cmd, argv[optind + 1], hex, "KEY", &key, &klen,
                          &kbuf)) != 0)
    goto done;
  if ((rc = cli_open_wait(argv[optind], 0, MAPKV_SYNC_COMMIT, wait_ms, &db)) !=
      0)
    goto done;
  if ((rc = mapkv_del(db, key, klen)) != 0)
    rc = cli_lib_fail(rc, NULL);
  if (cli_close(db) != 0)
    rc = CLI_FAIL;
done:
  free(kbuf);
  return rc;
}

const cli_cmd cli_cmd_del = {
    "del", run_del, "[--hex] [--wait S] DB KEY", "delete KEY",
    "Deletes KEY from DB as one durable commit. Exits 1 with \"key not\n"
    "found\" if KEY is absent.\n"
    "\n"
    "  -x, --hex           KEY is a hex string\n"
    "  -w, --wait SECONDS  if another process has DB open for writing, wait\n"
    "                      up to SECONDS for it to close it\n"
    "  -h, --help          show this help\n"};

/* ---- keys ---------------------------------------------------------------- */

static int run_keys(int argc, char **argv) {
  static const struct option opts[] = {{"hex", no_argument, NULL, 'x'},
                                       {"prefix", required_argument, NULL, 'P'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const cli_cmd *cmd = &cli_cmd_keys;
  const char *prefix_arg = "";
  const uint8_t *prefix;
  size_t plen;
  uint8_t *pbuf = NULL;
  mapkv_t *db = NULL;
  mapkv_cursor_t *cur = NULL;
  mapkv_stats st;
  int hex = 0, ch, rc;

  while ((ch = cli_getopt(cmd, argc, argv, "xh", opts, &rc)) != -1) {
    if (ch == 'x')
      hex = 1;
    else if (ch == 'P')
      prefix_arg = optarg;
    else
      return rc;
  }
  if ((rc = cli_operands(cmd, argc, argv, 1, "DB")) != 0)
    return rc;
  if ((rc = cli_arg_bytes(cmd, prefix_arg, hex, "--prefix", &prefix, &plen,
                          &pbuf)) != 0)
    goto done;
  if ((rc = cli_open(argv[optind], MAPKV_RDONLY, MAPKV_SYNC_COMMIT, &db)) != 0)
    goto done;
  if ((rc = mapkv_cursor_open(db, prefix, plen, &cur)) != 0) {
    rc = cli_lib_fail(rc, NULL);
    goto done;
  }
  for (;;) {
    const void *k;
    size_t klen;
    rc = mapkv_cursor_next(cur, &k, &klen, NULL, NULL);
    if (rc == MAPKV_NOTFOUND) {
      rc = 0;
      break;
    }
    if (rc != 0) {
      rc = cli_lib_fail(rc, NULL);
      goto done;
    }
    if (print_bytes(k, klen, hex, 1) != 0)
      break;
  }
  if (flush_stdout() != 0) {
    rc = CLI_FAIL;
    goto done;
  }
  /* The cursor skips records that fail their checksum: say so. */
  if (mapkv_stat(db, &st) == 0 && st.checksum_failures > 0) {
    rc = cli_fail("%llu damaged record(s) skipped (see mapkv verify)",
                  (unsigned long long)st.checksum_failures);
  }
done:
  mapkv_cursor_close(cur);
  mapkv_close(db);
  free(pbuf);
  return rc;
}

const cli_cmd cli_cmd_keys = {
    "keys", run_keys, "[--hex] [--prefix P] DB", "list the keys, one a line",
    "Lists the keys of DB, one a line, in the order they were written.\n"
    "\n"
    "  --prefix P  only the keys that start with P\n"
    "  -x, --hex   P is a hex string, and keys are printed in hex (a key that\n"
    "              holds a newline is ambiguous otherwise)\n"
    "  -h, --help  show this help\n"};
