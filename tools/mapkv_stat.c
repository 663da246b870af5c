/*
 * mapkv_stat.c — `mapkv stat`: the figures of a store (mapkv_stat()) as
 * text or as one JSON object.
 *
 * The store is opened read-only, so "the last recovery" is the one this
 * open ran: after a crash it reports what would be dropped, without
 * changing the file.
 */
#include <string.h>

#include "mapkv_cli.h"

/* The figures in print order: JSON name, text label, value. */
typedef struct figure {
  const char *json, *label;
  uint64_t value;
  int is_bool;
} figure;

static int run_stat(int argc, char **argv) {
  static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const cli_cmd *cmd = &cli_cmd_stat;
  mapkv_t *db = NULL;
  mapkv_stats st;
  int json = 0, ch, rc;

  while ((ch = cli_getopt(cmd, argc, argv, "jh", opts, &rc)) != -1) {
    if (ch != 'j')
      return rc;
    json = 1;
  }
  if ((rc = cli_operands(cmd, argc, argv, 1, "DB")) != 0)
    return rc;
  if ((rc = cli_open(argv[optind], MAPKV_RDONLY, MAPKV_SYNC_COMMIT, &db)) != 0)
    return rc;
  if ((rc = mapkv_stat(db, &st)) != 0) {
    rc = cli_lib_fail(rc, NULL);
    mapkv_close(db);
    return rc;
  }
  mapkv_close(db);

  {
    const figure f[] = {
        {"format_version", "format version", st.format_version, 0},
        {"records", "records", st.records, 0},
        {"live_bytes", "live bytes", st.live_bytes, 0},
        {"dead_bytes", "dead bytes", st.dead_bytes, 0},
        {"data_end", "data end", st.data_end, 0},
        {"file_size", "file size", st.file_size, 0},
        {"mapped_size", "mapped size", st.mapped_size, 0},
        {"reserved_size", "reserved size", st.reserved_size, 0},
        {"index_slots", "index slots", st.index_slots, 0},
        {"index_bytes", "index bytes", st.index_bytes, 0},
        {"last_seq", "last sequence", st.last_seq, 0},
        {"generation", "generation", st.generation, 0},
        {"clean_open", "clean open", st.clean_open, 1},
        {"recovered_batches", "recovered batches", st.recovered_batches, 0},
        {"dropped_tail_bytes", "dropped tail bytes", st.dropped_tail_bytes, 0},
        {"dropped_tail_records", "dropped tail records",
         st.dropped_tail_records, 0},
        {"damaged_regions", "damaged regions", st.damaged_regions, 0},
        {"damaged_bytes", "damaged bytes", st.damaged_bytes, 0},
        {"first_damage_offset", "first damage offset", st.first_damage_offset,
         0},
        {"checksum_failures", "checksum failures", st.checksum_failures, 0},
    };
    size_t n = sizeof f / sizeof f[0];
    if (json) {
      putchar('{');
      for (size_t i = 0; i < n; i++) {
        if (f[i].is_bool)
          printf("%s\"%s\":%s", i ? "," : "", f[i].json,
                 f[i].value ? "true" : "false");
        else
          printf("%s\"%s\":%llu", i ? "," : "", f[i].json,
                 (unsigned long long)f[i].value);
      }
      puts("}");
    } else {
      for (size_t i = 0; i < n; i++) {
        char label[32];
        snprintf(label, sizeof label, "%s:", f[i].label);
        if (f[i].is_bool)
          printf("%-22s%s\n", label, f[i].value ? "yes" : "no");
        else
          printf("%-22s%llu\n", label, (unsigned long long)f[i].value);
      }
    }
  }
  if (fflush(stdout) != 0 || ferror(stdout))
    return cli_fail("writing to standard output failed");
  return CLI_OK;
}

const cli_cmd cli_cmd_stat = {
    "stat", run_stat, "[--json] DB", "figures of the store and its recovery",
    "Prints the figures of DB: format version, live records, live and dead\n"
    "bytes, data end, file and mapped size, index slots and bytes, sequence,\n"
    "generation, whether the open found a clean close, and what recovery\n"
    "dropped (an uncommitted tail; damaged regions in the middle). DB is\n"
    "opened read-only: after a crash this shows what a writer's recovery\n"
    "would drop, without changing the file.\n"
    "\n"
    "  -j, --json  print one JSON object (numbers, clean_open a boolean)\n"
    "  -h, --help  show this help\n"};
