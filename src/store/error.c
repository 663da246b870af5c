/*
 * error.c — mapkv_strerror() from the one X-macro table in mapkv.h, and the
 * thread-local message of the last failure.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mapkv/mapkv.h"
#include "mapkv/mmf.h"
#include "store_err.h"

static _Thread_local char msg[512];
/* The current message: msg, or a static string (no formatting on paths as
 * hot as a lookup that misses). */
static _Thread_local const char *cur = "";

const char *mapkv_strerror(int code) {
  switch (code) {
  case 0:
    return "success";
#define MAPKV_ERR_CASE(name, value, text)                                      \
  case value:                                                                  \
    return text;
    MAPKV_ERRNO_MAP(MAPKV_ERR_CASE)
#undef MAPKV_ERR_CASE
  default:
    break;
  }
  if (code < 0 && code > -4096)
    return strerror(-code);
  return "unknown error";
}

const char *mapkv_errmsg(void) { return cur; }

int mapkv__fail_static(int code, const char *text) {
  cur = text;
  return code;
}

int mapkv__fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  cur = msg;
  return code;
}

int mapkv__fail_errno(const char *what) {
  int e = errno != 0 ? errno : EIO;
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(e));
  cur = msg;
  return -e;
}

int mapkv__fail_mmf(int mmf_code, const char *what) {
  snprintf(msg, sizeof msg, "%s: %s", what, mmf_errmsg());
  cur = msg;
  /* The engine's codes, not the mapping core's, leave the library: an OS
   * failure as -errno, the rest as what they mean to a caller. */
  if (mmf_is_oserror(mmf_code))
    return mmf_code;
  return mmf_code == MMF_ENOMEM ? MAPKV_ENOMEM : MAPKV_EINVAL;
}
