/*
 * salvage.c — mapkv_recover(): the intact live records of a store copied
 * into a new store, beside it or in its place.
 *
 * The source is opened read-only with MAPKV_VERIFY (a salvage open: it
 * refuses nothing, every checksum is verified, and a cursor over it hands
 * out only intact records of accepted batches). The new store is written
 * under a temporary name of this process (os.h: "<name>.recovering.<pid>.
 * <id>") next to where it goes, closed cleanly (flushed), and then:
 *   - into a new file: linked to its name (which fails, rather than
 *     overwrites, if the name appeared meanwhile), the temporary unlinked;
 *   - in place: holding the writer lock of the store (taken before the
 *     source is opened, on the file the path names at that moment), the
 *     original gets a second name (a hard link, so that the path never
 *     stops naming a store), the new store is renamed over the path and
 *     the directory synced.
 * A crash leaves the original under its name, plus at most a temporary
 * file (removed by the next writable open) and a backup name.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "os.h"
#include "store.h"
#include "store_err.h"

#define BATCH_RECORDS 10000
#define BATCH_BYTES   (64u << 20)

/* Copies every record a cursor over src hands out into dst, in batches. */
static int copy_records(mapkv_t *src, mapkv_t *dst, uint64_t *saved) {
  mapkv_cursor_t *c = NULL;
  mapkv_batch_t *b = NULL;
  size_t n = 0, bytes = 0;
  int rc;
  *saved = 0;
  if ((rc = mapkv_cursor_open(src, NULL, 0, &c)) != 0)
    return rc;
  for (;;) {
    const void *k, *v;
    size_t kl, vl;
    rc = mapkv_cursor_next(c, &k, &kl, &v, &vl);
    if (rc == MAPKV_NOTFOUND) {
      rc = 0;
      break;
    }
    if (rc != 0)
      break;
    if (b == NULL && (rc = mapkv_batch_begin(dst, &b)) != 0)
      break;
    if ((rc = mapkv_batch_put(b, k, kl, v, vl)) != 0)
      break;
    n++;
    bytes += kl + vl;
    if (n == BATCH_RECORDS || bytes >= BATCH_BYTES) {
      rc = mapkv_batch_commit(b);
      b = NULL;
      if (rc != 0)
        break;
      *saved += n;
      n = bytes = 0;
    }
  }
  if (rc == 0 && b != NULL) {
    rc = mapkv_batch_commit(b);
    b = NULL;
    if (rc == 0)
      *saved += n;
  }
  mapkv_batch_abort(b);
  mapkv_cursor_close(c);
  return rc;
}

/* The limits of the new store: the source's. A store of format version 1
 * recorded none (its writers' options allowed keys and values up to the
 * format's limits): the defaults then, raised to what its records need. */
static int new_limits(mapkv_t *src, uint32_t *kmax, uint32_t *vmax) {
  mapkv_cursor_t *c = NULL;
  const void *k, *v;
  size_t kl, vl;
  int rc;
  *kmax = src->opts.max_key_size;
  *vmax = src->opts.max_value_size;
  if (src->log.hdr.version != 1)
    return 0;
  if ((rc = mapkv_cursor_open(src, NULL, 0, &c)) != 0)
    return rc;
  while ((rc = mapkv_cursor_next(c, &k, &kl, &v, &vl)) == 0) {
    if (kl > *kmax)
      *kmax = (uint32_t)kl;
    if (vl > *vmax)
      *vmax = (uint32_t)vl;
  }
  mapkv_cursor_close(c);
  return rc == MAPKV_NOTFOUND ? 0 : rc;
}

/* Gives the file at path the second name "<path><tag>-<unix time>[-i]"
 * (into backup): a hard link, or where the file system has none, a
 * rename (the store is then briefly absent under its name; *moved = 1). */
static int keep_original(const char *path, const char *tag, char *backup,
                         size_t cap, int *moved) {
  long long now = (long long)time(NULL);
  int e = 0;
  for (int i = 1; i < 1000; i++) {
    if (i == 1)
      snprintf(backup, cap, "%s%s-%lld", path, tag, now);
    else
      snprintf(backup, cap, "%s%s-%lld-%d", path, tag, now, i);
    if (mapkv__os.link(path, backup) == 0)
      return 0;
    e = errno;
    if (e == EEXIST)
      continue;
    if (e == EPERM || e == ENOTSUP || e == EOPNOTSUPP || e == EMLINK) {
      struct stat st;
      if (mapkv__os.stat(backup, &st) != 0 &&
          mapkv__os.rename(path, backup) == 0) {
        *moved = 1;
        return 0;
      }
      e = errno;
    }
    break;
  }
  return mapkv__fail(-e, "keeping the original as %s: %s", backup, strerror(e));
}

/* The first published mapkv_recover_info, which later versions only
 * extend (its last field, a mapkv_stats, grows at its end). */
#define INFO_MIN_SIZE                                                          \
  (offsetof(mapkv_recover_info, found) +                                       \
   offsetof(mapkv_stats, max_value_size) + sizeof(uint32_t))

int mapkv_recover_size(const char *path, const char *out, unsigned flags,
                       uint32_t lock_timeout_ms, mapkv_recover_info *info,
                       size_t info_size) {
  mapkv_recover_info r;
  mapkv_options o;
  mapkv_t *src = NULL, *dst = NULL;
  char *real = NULL, *tmp = NULL;
  const char *target;
  uint64_t id, damaged = 0;
  struct stat st;
  int rc, lockfd = -1, made = 0, moved = 0, vrc;

  memset(&r, 0, sizeof r);
  if (path == NULL || (flags & ~MAPKV_RECOVER_FORCE) != 0 ||
      (info != NULL && info_size < INFO_MIN_SIZE))
    return mapkv__fail(MAPKV_EINVAL,
                       "NULL path, unknown flags, or a size smaller than "
                       "any mapkv_recover_info");
  if ((rc = mapkv__os_resolve(path, &real)) != 0)
    return mapkv__fail(rc, "%s: %s", path, strerror(-rc));
  if (out == NULL &&
      (rc = mapkv__lock_path(real, lock_timeout_ms, &lockfd)) != 0)
    goto done;
  if (out != NULL && lstat(out, &st) == 0) {
    rc = mapkv__fail(-EEXIST,
                     "%s exists: recovery writes a new store (remove it or "
                     "choose another name)",
                     out);
    goto done;
  }

  mapkv_options_init(&o);
  o.flags = MAPKV_RDONLY | MAPKV_VERIFY;
  if ((rc = mapkv_open(real, &o, &src)) != 0)
    goto done;
  vrc = mapkv_verify(src, NULL, NULL, &damaged);
  if (vrc != 0 && vrc != MAPKV_ECORRUPT) {
    rc = vrc;
    goto done;
  }
  r.damaged = vrc == MAPKV_ECORRUPT;
  mapkv_stat(src, &r.found);
  if (out == NULL && !r.damaged && !(flags & MAPKV_RECOVER_FORCE) &&
      src->log.hdr.version == MAPKV_FORMAT_VERSION) {
    rc = 0; /* nothing to salvage: left as it is */
    goto done;
  }

  target = out != NULL ? out : real;
  if (mapkv__os.random(&id, sizeof id) != 0) {
    rc = mapkv__fail_errno("getrandom");
    goto done;
  }
  if ((tmp = mapkv__os_tmp_name(target, "recovering", id)) == NULL) {
    rc = mapkv__fail(MAPKV_ENOMEM, "out of memory");
    goto done;
  }
  mapkv_options_init(&o);
  o.flags = MAPKV_CREATE;
  o.sync_mode = MAPKV_SYNC_NONE; /* one flush at the close */
  if ((rc = new_limits(src, &o.max_key_size, &o.max_value_size)) != 0)
    goto done;
  o.expected_keys = r.found.records;
  /* The name is this call's own: whatever a failed open left there goes. */
  made = 1;
  if ((rc = mapkv_open(tmp, &o, &dst)) != 0)
    goto done;
  if (out == NULL && (rc = mapkv__os_copy_owner(lockfd, dst->log.fd)) != 0) {
    rc = mapkv__fail(rc,
                     "%s: the recovered store cannot keep the store's owner "
                     "or mode (%s); nothing was replaced",
                     real, strerror(-rc));
    goto done;
  }
  if ((rc = copy_records(src, dst, &r.saved)) != 0)
    goto done;
  rc = mapkv_close(dst);
  dst = NULL;
  if (rc != 0)
    goto done;
  r.lost = r.found.records > r.saved ? r.found.records - r.saved : 0;

  if (out != NULL) {
    if (mapkv__os.link(tmp, out) != 0) {
      rc = mapkv__fail_errno(out);
      goto done;
    }
  } else {
    char tag[16];
    if (r.damaged)
      snprintf(tag, sizeof tag, ".damaged");
    else if (src->log.hdr.version != MAPKV_FORMAT_VERSION)
      snprintf(tag, sizeof tag, ".v%u", (unsigned)src->log.hdr.version);
    else
      snprintf(tag, sizeof tag, ".orig");
    if ((rc = keep_original(real, tag, r.backup, sizeof r.backup, &moved)) != 0)
      goto done;
    if (mapkv__os.rename(tmp, real) != 0) {
      int e = errno;
      /* Renamed away: the original gets its name back. */
      if (moved && mapkv__os.rename(r.backup, real) == 0)
        rc = mapkv__fail(-e,
                         "renaming the recovered store to %s: %s (the "
                         "original is unchanged)",
                         real, strerror(e));
      else
        rc = mapkv__fail(-e,
                         "renaming the recovered store to %s: %s (the "
                         "original is kept as %s)",
                         real, strerror(e), r.backup);
      goto done;
    }
    made = 0;
  }
  r.rewritten = 1;
  if ((rc = mapkv__os_sync_dir(target)) != 0)
    rc = mapkv__fail(rc, "syncing the directory of %s: %s", target,
                     strerror(-rc));

done:
  mapkv_close(dst);
  if (made)
    mapkv__os.unlink(tmp);
  mapkv_close(src);
  if (lockfd >= 0)
    mapkv__os.close(lockfd);
  free(tmp);
  free(real);
  if (rc == 0 && info != NULL) {
    if (info_size > sizeof r)
      memset((char *)info + sizeof r, 0, info_size - sizeof r);
    memcpy(info, &r, info_size < sizeof r ? info_size : sizeof r);
  }
  return rc;
}
