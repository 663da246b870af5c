/*
 * mapkv_stat.c — `mapkv stat`: the figures of a store (mapkv_stat()) as
 * text or as one JSON object.
 *
 * The store is opened read-only, so "the last recovery" is the one this
 * open ran: after a crash it reports what would be dropped, without
 * changing the file. The text says in words whether the store was closed
 * cleanly, is open for writing now (the holder of its lock, from
 * /proc/locks), or was left by a writer that crashed; JSON gives every
 * figure.
 */
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "mapkv_cli.h"

/* The figures in print order: JSON name, text label, value. */
typedef struct figure {
  const char *json, *label;
  uint64_t value;
  int is_bool;
} figure;

/* The process that holds the writer's lock (an exclusive flock) on the file
 * at path, from /proc/locks (Linux), or 0 if there is none or it cannot be
 * told. Taking the lock to find out would make a writer that starts at that
 * moment fail. */
static long lock_holder(const char *path) {
  struct stat sb;
  char line[256];
  long pid = 0;
  FILE *f;
  if (stat(path, &sb) != 0 || (f = fopen("/proc/locks", "r")) == NULL)
    return 0;
  while (pid == 0 && fgets(line, sizeof line, f) != NULL) {
    char kind[16], mode[16], access[16];
    unsigned maj, min;
    unsigned long long ino;
    long p;
    /* "1: FLOCK  ADVISORY  WRITE 18832 fe:00:10952850 0 EOF" */
    if (sscanf(line, "%*d: %15s %15s %15s %ld %x:%x:%llu", kind, mode, access,
               &p, &maj, &min, &ino) == 7 &&
        strcmp(kind, "FLOCK") == 0 && strcmp(access, "WRITE") == 0 &&
        ino == (unsigned long long)sb.st_ino && maj == major(sb.st_dev) &&
        min == minor(sb.st_dev))
      pid = p;
  }
  fclose(f);
  return pid;
}

/* One line in words: what the open found, and what recovery did. */
static void print_state(const mapkv_stats *st, long writer) {
  const char *label = "last close:";
  if (st->clean_open) {
    printf("%-22sclean\n", label);
    printf("%-22s%llu\n",
           "batches indexed:", (unsigned long long)st->recovered_batches);
    if (st->damaged_regions == 0) {
      printf("%-22snot needed (the store was closed cleanly)\n", "recovery:");
      return;
    }
    /* Damage since the clean close: it stays in place, reported. */
    printf("%-22s%llu region(s) of %llu bytes, the first at offset %llu; "
           "%llu key(s) answer \"damaged\" (see mapkv verify, mapkv "
           "recover)\n",
           "damage:", (unsigned long long)st->damaged_regions,
           (unsigned long long)st->damaged_bytes,
           (unsigned long long)st->first_damage_offset,
           (unsigned long long)st->damaged_keys);
    printf("%-22s%llu\n",
           "damaged keys:", (unsigned long long)st->damaged_keys);
    return;
  }
  if (writer > 0)
    printf("%-22sstill open: process %ld has the store open for writing "
           "(the figures are those of its commits so far)\n",
           label, writer);
  else
    printf("%-22snot clean: the last writer did not close the store (it "
           "crashed or was killed)\n",
           label);
  printf("%-22s%llu\n",
         "batches recovered:", (unsigned long long)st->recovered_batches);
  printf("%-22s", "recovery:");
  if (st->dropped_tail_bytes == 0 && st->damaged_regions == 0)
    printf("every batch intact, nothing to drop\n");
  else {
    const char *sep = "";
    if (st->dropped_tail_bytes > 0) {
      printf("an uncommitted tail of %llu bytes (%llu records) %s dropped",
             (unsigned long long)st->dropped_tail_bytes,
             (unsigned long long)st->dropped_tail_records,
             writer > 0 ? "is not yet committed: it is not" : "is");
      sep = "; ";
    }
    if (st->damaged_regions > 0)
      printf("%s%llu damaged region(s) of %llu bytes skipped, the first at "
             "offset %llu (see mapkv verify)",
             sep, (unsigned long long)st->damaged_regions,
             (unsigned long long)st->damaged_bytes,
             (unsigned long long)st->first_damage_offset);
    putchar('\n');
  }
  printf("%-22s%llu\n",
         "dropped tail bytes:", (unsigned long long)st->dropped_tail_bytes);
  printf("%-22s%llu\n",
         "dropped tail records:", (unsigned long long)st->dropped_tail_records);
  printf("%-22s%llu\n",
         "damaged regions:", (unsigned long long)st->damaged_regions);
  printf("%-22s%llu\n",
         "damaged bytes:", (unsigned long long)st->damaged_bytes);
  printf("%-22s%llu\n",
         "first damage offset:", (unsigned long long)st->first_damage_offset);
  printf("%-22s%llu\n", "damaged keys:", (unsigned long long)st->damaged_keys);
}

static int run_stat(int argc, char **argv) {
  static const struct option opts[] = {{"json", no_argument, NULL, 'j'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const cli_cmd *cmd = &cli_cmd_stat;
  mapkv_t *db = NULL;
  mapkv_stats st;
  long writer = 0;
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
  if (!st.clean_open)
    writer = lock_holder(argv[optind]);

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
        /* The text shows these in words (print_state()). */
        {"clean_open", NULL, st.clean_open, 1},
        {"writer_pid", NULL, (uint64_t)writer, 0},
        {"recovered_batches", NULL, st.recovered_batches, 0},
        {"dropped_tail_bytes", NULL, st.dropped_tail_bytes, 0},
        {"dropped_tail_records", NULL, st.dropped_tail_records, 0},
        {"damaged_regions", NULL, st.damaged_regions, 0},
        {"damaged_bytes", NULL, st.damaged_bytes, 0},
        {"first_damage_offset", NULL, st.first_damage_offset, 0},
        {"checksum_failures", "checksum failures", st.checksum_failures, 0},
        {"damaged_keys", NULL, st.damaged_keys, 0},
        {"truncated_bytes", NULL, st.truncated_bytes, 0},
        {"max_key_size", "key limit", st.max_key_size, 0},
        {"max_value_size", "value limit", st.max_value_size, 0},
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
      int state_shown = 0;
      for (size_t i = 0; i < n; i++) {
        char label[32];
        if (f[i].label == NULL) {
          if (!state_shown)
            print_state(&st, writer);
          state_shown = 1;
          continue;
        }
        snprintf(label, sizeof label, "%s:", f[i].label);
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
    "generation; then, in words, how the store was last closed (\"last\n"
    "close:\") and what the open found:\n"
    "\n"
    "  clean       the last writer closed it; the open indexed the batches\n"
    "              up to the end the header records, and no recovery was\n"
    "              needed\n"
    "  still open  a process has it open for writing now\n"
    "  not clean   the last writer crashed or was killed; the open\n"
    "              recovered the intact batches and tells what it dropped\n"
    "              (an uncommitted tail, damaged regions in the middle)\n"
    "\n"
    "DB is opened read-only: after a crash this shows what a writer's\n"
    "recovery would drop, without changing the file.\n"
    "\n"
    "  -j, --json  print one JSON object with every figure (clean_open a\n"
    "              boolean; writer_pid the process that has DB open for\n"
    "              writing, 0 if none is known; recovered_batches the\n"
    "              batches the open indexed or recovered)\n"
    "  -h, --help  show this help\n"};
