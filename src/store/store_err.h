/*
 * store_err.h — the engine's failure messages: a thread-local buffer that
 * mapkv_errmsg() returns, set by mapkv__fail() where an error is detected.
 */
#ifndef MAPKV_STORE_ERR_H
#define MAPKV_STORE_ERR_H

#if defined(__GNUC__)
#define MAPKV__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define MAPKV__PRINTF(a, b)
#endif

/* Records a message for code and returns code. */
int mapkv__fail(int code, const char *fmt, ...) MAPKV__PRINTF(2, 3);

/* Records a static message (not copied: it must be a string literal). */
int mapkv__fail_static(int code, const char *text);

/* An OS failure: returns -errno (EIO if errno is 0), message
 * "<what>: <strerror>". */
int mapkv__fail_errno(const char *what);

/* A failure of the mapping core: keeps an OS error as -errno, maps
 * MMF_ENOMEM to MAPKV_ENOMEM and the other codes (a request the mapping
 * refused) to MAPKV_EINVAL, and carries mmf_errmsg() into the message. */
int mapkv__fail_mmf(int mmf_code, const char *what);

#endif
