/*
 * valgrind-shim.c — preloaded (LD_PRELOAD) into the programs that
 * .ci/memcheck.sh runs under valgrind, and only there. It works around two
 * limits of valgrind 3.19 (Debian 12) that mapkv's mapping pattern hits;
 * neither changes what the program computes.
 *
 * 1. Memcheck cannot map more than about 60 GiB of address space, and a
 *    writable mapkv store reserves 64 GiB by default (mapkv_options.reserve),
 *    so every open would fail with EINVAL/ENOMEM. A PROT_NONE anonymous
 *    reservation larger than CAP is made CAP bytes long instead. The rest
 *    is only pretended: a fixed mapping that would reach past the real part
 *    fails with ENOMEM (rather than clobber what lies there), and unmapping
 *    the whole requested range unmaps the real part only. Trimming the
 *    head or the tail of a reservation (the mapping core aligns large ones
 *    to 2 MiB that way) moves its bounds. No test store comes near CAP.
 *
 * 2. Valgrind's address-space manager aborts ("aspacem assertion failed:
 *    ! is_freeslot(ix) at aspacemgr-segnames.c:221") after a shared file
 *    mapping has been grown by mapping the next pages of the same file
 *    right behind it (MAP_FIXED), and the file was later renamed/unmapped —
 *    exactly how the mapping core grows a store inside its reservation and
 *    how compaction replaces it. Growing by remapping the file from the
 *    start of the reservation (one mapping of [0, new end) instead of a
 *    second piece at the old end) gives the kernel the same pages and the
 *    same contents (MAP_SHARED: the page cache) and avoids the bug.
 *
 * Build: cc -shared -fPIC -O2 -o valgrind-shim.so valgrind-shim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/types.h>

#define CAP   (4ull << 30)
#define SLOTS 4096

/* Reservations: [base, base+real) exists, [base+real, base+req) is
 * pretended (real == req when nothing was cut). */
static struct { uintptr_t base, req, real; } tab[SLOTS];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
typedef int (*munmap_fn)(void *, size_t);

static void *real_mmap(void *a, size_t n, int p, int f, int fd, off_t o) {
  static mmap_fn fn;
  if (fn == NULL)
    *(void **)&fn = dlsym(RTLD_NEXT, "mmap"); /* POSIX dlsym idiom */
  return fn(a, n, p, f, fd, o);
}

static int real_munmap(void *a, size_t n) {
  static munmap_fn fn;
  if (fn == NULL)
    *(void **)&fn = dlsym(RTLD_NEXT, "munmap");
  return fn(a, n);
}

/* The reservation whose real part holds address a, or -1. */
static int real_slot(uintptr_t a) {
  for (int i = 0; i < SLOTS; i++)
    if (tab[i].base != 0 && a >= tab[i].base && a < tab[i].base + tab[i].real)
      return i;
  return -1;
}

/* Whether a lies in the pretended part of a reservation. */
static int phantom(uintptr_t a) {
  for (int i = 0; i < SLOTS; i++)
    if (tab[i].base != 0 && a >= tab[i].base + tab[i].real &&
        a < tab[i].base + tab[i].req)
      return 1;
  return 0;
}

static int is_reservation(void *addr, int prot, int flags, int fd) {
  return addr == NULL && prot == PROT_NONE && fd == -1 &&
         (flags & MAP_ANONYMOUS) && (flags & MAP_NORESERVE) &&
         !(flags & MAP_FIXED);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  uintptr_t a = (uintptr_t)addr;
  void *p;
  if (is_reservation(addr, prot, flags, fd)) {
    size_t real = len > CAP ? CAP : len;
    p = real_mmap(NULL, real, prot, flags, fd, off);
    if (p == MAP_FAILED)
      return p;
    pthread_mutex_lock(&mu);
    for (int i = 0; i < SLOTS; i++) {
      if (tab[i].base == 0) {
        tab[i].base = (uintptr_t)p;
        tab[i].req = len;
        tab[i].real = real;
        break;
      }
    }
    pthread_mutex_unlock(&mu);
    return p;
  }
  if (flags & MAP_FIXED) {
    int i, bad = 0;
    uintptr_t base = 0;
    pthread_mutex_lock(&mu);
    i = real_slot(a);
    if (i >= 0) {
      bad = a + len > tab[i].base + tab[i].real;
      base = tab[i].base;
    } else {
      bad = phantom(a);
    }
    pthread_mutex_unlock(&mu);
    if (bad) {
      errno = ENOMEM;
      return MAP_FAILED;
    }
    /* Growth of a shared file mapping that starts at the reservation's
     * base: remap the file from its start instead (see 2. above). */
    if (i >= 0 && fd >= 0 && off > 0 && (flags & MAP_SHARED) &&
        a - base == (uintptr_t)off) {
      p = real_mmap((void *)base, (size_t)off + len, prot, flags, fd, 0);
      return p == MAP_FAILED ? p : addr;
    }
  }
  return real_mmap(addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  return mmap(addr, len, prot, flags, fd, off);
}

/* The reservation whose pretended part holds a (the nearest below a: the
 * pretended parts of two reservations may overlap), or -1. */
static int phantom_slot(uintptr_t a) {
  int best = -1;
  for (int i = 0; i < SLOTS; i++)
    if (tab[i].base != 0 && a >= tab[i].base + tab[i].real &&
        a < tab[i].base + tab[i].req &&
        (best < 0 || tab[i].base > tab[best].base))
      best = i;
  return best;
}

int munmap(void *addr, size_t len) {
  uintptr_t a = (uintptr_t)addr, e = a + len;
  int i;
  pthread_mutex_lock(&mu);
  i = real_slot(a);
  if (i >= 0) {
    uintptr_t base = tab[i].base, rend = base + tab[i].real;
    if (a == base && e >= base + tab[i].req) {
      tab[i].base = 0; /* the whole reservation goes */
    } else if (a == base) {
      /* Its head is trimmed (an aligned reservation): it starts at e. */
      tab[i].base = e;
      tab[i].req -= e - a;
      tab[i].real = e < rend ? rend - e : 0;
      if (tab[i].real == 0)
        tab[i].base = 0; /* only pretended space is left */
    } else if (e >= base + tab[i].req) {
      /* Its tail is trimmed: it ends at a. */
      tab[i].req = a - base;
      if (tab[i].real > tab[i].req)
        tab[i].real = tab[i].req;
    }
    if (e > rend)
      e = rend; /* only the real part is unmapped */
  } else if ((i = phantom_slot(a)) >= 0) {
    /* Address space that was never reserved: nothing to unmap, but a
     * trimmed tail shortens the reservation. */
    if (e >= tab[i].base + tab[i].req)
      tab[i].req = a - tab[i].base;
    e = a;
  }
  pthread_mutex_unlock(&mu);
  if (e <= a)
    return 0;
  return real_munmap((void *)a, (size_t)(e - a));
}
