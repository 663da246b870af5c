/*
 * mapkv.c — the mapkv command-line tool: main() and the command table.
 *
 *   mapkv COMMAND [OPTIONS] ARGS...
 *
 * Each command lives in the file named for its kind (mapkv_kv.c: put, get,
 * del, keys; mapkv_stat.c; mapkv_dump.c: dump, load; mapkv_repair.c:
 * verify, recover, compact, copy) and parses its own options. Help goes to
 * stdout with exit status 0; a bad command line to stderr with status 2;
 * failures are "mapkv: ..." on stderr with status 3, and a key that is not
 * there (get, del) or damage that verify found with status 1.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mapkv_cli.h"

static const cli_cmd *const commands[] = {
    &cli_cmd_put,     &cli_cmd_get,     &cli_cmd_del,     &cli_cmd_keys,
    &cli_cmd_stat,    &cli_cmd_dump,    &cli_cmd_load,    &cli_cmd_verify,
    &cli_cmd_recover, &cli_cmd_compact, &cli_cmd_upgrade, &cli_cmd_copy};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

#define USAGE_LINE "usage: mapkv COMMAND [OPTIONS] ARGS...\n"

static void help(void) {
  printf(USAGE_LINE "\n"
                    "The command-line tool of mapkv %s, an embedded "
                    "key-value store\n"
                    "in one memory-mapped file (format version %d).\n\n"
                    "Commands:\n",
         mapkv_version(), MAPKV_FORMAT_VERSION);
  for (size_t i = 0; i < NCOMMANDS; i++) {
    char left[128];
    snprintf(left, sizeof left, "%s %s", commands[i]->name, commands[i]->args);
    if (strlen(left) <= 29)
      printf("  %-29s %s\n", left, commands[i]->summary);
    else /* the summary on a line of its own */
      printf("  %s\n  %-29s %s\n", left, "", commands[i]->summary);
  }
  printf("\n"
         "Options:\n"
         "  -h, --help     show this help; `mapkv COMMAND --help` or\n"
         "                 `mapkv help COMMAND` shows a command's\n"
         "  -V, --version  show the version\n"
         "\n"
         "Commands that write take -w, --wait SECONDS: wait that long for\n"
         "another process that has the store open for writing to close it.\n"
         "\n"
         "Exit status:\n"
         "  0  success\n"
         "  1  the key is not in the store (get, del), or verify found "
         "damage\n"
         "  2  usage error (bad command line)\n"
         "  3  failure: the store could not be opened (missing, not a store,\n"
         "     open for writing by another process), bad input, I/O error\n");
}

static const cli_cmd *find(const char *name) {
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (strcmp(commands[i]->name, name) == 0)
      return commands[i];
  return NULL;
}

CLI_PRINTF(1, 2) static int usage_error(const char *fmt, ...) {
  va_list ap;
  fputs("mapkv: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs("\n" USAGE_LINE "(mapkv --help lists the commands)\n", stderr);
  return CLI_USAGE;
}

int main(int argc, char **argv) {
  const cli_cmd *cmd;
  const char *first;

  if (argc < 2)
    return usage_error("no command");
  first = argv[1];
  if (strcmp(first, "-h") == 0 || strcmp(first, "--help") == 0 ||
      strcmp(first, "help") == 0) {
    if (argc > 2) {
      if ((cmd = find(argv[2])) == NULL)
        return usage_error("unknown command \"%s\"", argv[2]);
      cli_help(cmd);
    } else {
      help();
    }
    return fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
  }
  if (strcmp(first, "-V") == 0 || strcmp(first, "--version") == 0) {
    printf("mapkv %s (format version %d)\n", mapkv_version(),
           MAPKV_FORMAT_VERSION);
    return fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
  }
  if (first[0] == '-')
    return usage_error("unknown option %s (options follow the command)", first);
  if ((cmd = find(first)) == NULL)
    return usage_error("unknown command \"%s\"", first);
  return cmd->run(argc - 1, argv + 1);
}
