/*
 * dumpfmt.h — the portable text dump format of Berkeley DB's db_dump/db_load
 * and LMDB's mdb_dump/mdb_load: a reader (parser) and a writer.
 *
 * The format, as the mapkv tool reads and writes it:
 *
 *   VERSION=3                header: NAME=VALUE lines ...
 *   format=bytevalue         ("print" for the printable variant)
 *   type=btree
 *   HEADER=END               ... up to this line
 *    6b6579                  then a key line and a value line, alternately,
 *    76616c7565              each starting with one space
 *   DATA=END                 and the end of the data
 *
 * "bytevalue" items are pairs of hex digits (written lowercase, read in
 * either case). "print" items are the bytes themselves when printable ASCII
 * (0x20-0x7e), a backslash as "\\", and any other byte as "\" and two hex
 * digits. An empty item is a line holding the single space. Lines end with
 * "\n"; the last line of the input may lack it.
 *
 * The reader is strict about the data (every error names the line, and the
 * column where it helps) and lenient about the header: it needs VERSION=3
 * and a known format=, and records but ignores every other keyword (type=,
 * mapsize=, database=, db_pagesize=, ...). It never reads outside its input
 * and bounds every line by the item limits given at creation, so any input
 * either parses or fails cleanly: the parser is meant to be fuzzed.
 *
 * This module depends on the C library only (not on mapkv).
 */
#ifndef MAPKV_TOOLS_DUMPFMT_H
#define MAPKV_TOOLS_DUMPFMT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/** Item encodings (the header's format= keyword). */
enum dumpfmt_format {
  DUMPFMT_BYTEVALUE = 0, /**< "bytevalue": hex pairs */
  DUMPFMT_PRINT = 1      /**< "print": printable bytes as is, others \XX */
};

/** Return codes of the reader (negative; 0 is success). */
enum dumpfmt_error {
  DUMPFMT_ESYNTAX = -1, /**< malformed input (dumpfmt_errmsg() says where) */
  DUMPFMT_ETOOBIG = -2, /**< an item exceeds the limit given at creation */
  DUMPFMT_EIO = -3,     /**< reading the FILE failed (errno is kept) */
  DUMPFMT_ENOMEM = -4,  /**< out of memory */
  DUMPFMT_ESTATE = -5   /**< call out of order (e.g. records before header) */
};

/** What the header said. */
typedef struct dumpfmt_header {
  int version;    /**< VERSION= (always 3 once accepted) */
  int format;     /**< enum dumpfmt_format */
  int duplicates; /**< 1 if duplicates=1 (keys may repeat) */
  char type[16];  /**< type= value ("btree", "hash", ...), "" if absent;
                       truncated to 15 bytes */
  uint64_t lines; /**< lines in the header, HEADER=END included */
} dumpfmt_header;

/** A reader: parses one dump from a FILE or a memory buffer. */
typedef struct dumpfmt_reader dumpfmt_reader;

/**
 * Creates a reader of f (read with fread from its current position; not
 * closed by the reader).
 * @param max_key    largest key accepted, in bytes (decoded)
 * @param max_value  largest value accepted, in bytes (decoded)
 * @return the reader (free it with dumpfmt_reader_free()), or NULL when out
 *   of memory.
 */
dumpfmt_reader *dumpfmt_reader_file(FILE *f, size_t max_key, size_t max_value);

/**
 * Creates a reader of the len bytes at buf. The buffer is only read, and
 * must stay valid and unchanged until the reader is freed.
 * @return the reader, or NULL when out of memory.
 */
dumpfmt_reader *dumpfmt_reader_mem(const void *buf, size_t len, size_t max_key,
                                   size_t max_value);

/** Frees the reader. NULL is a no-op. */
void dumpfmt_reader_free(dumpfmt_reader *r);

/**
 * Reads the header, up to and including HEADER=END. Must be the first call.
 * @param h  receives what the header said (written only on success)
 * @return 0, or DUMPFMT_ESYNTAX, DUMPFMT_EIO, DUMPFMT_ENOMEM, DUMPFMT_ESTATE.
 */
int dumpfmt_read_header(dumpfmt_reader *r, dumpfmt_header *h);

/**
 * Reads the next key/value pair. After DATA=END the reader checks that the
 * input ends there (a second database is an error: mapkv loads one).
 * @param key, klen, val, vlen  receive the decoded item (written only when
 *   1 is returned). The bytes are owned by the reader and stay valid until
 *   the next call on it; they are not NUL-terminated. An empty item has
 *   length 0 and a non-NULL pointer.
 * @return 1 (a pair was read), 0 (DATA=END: no more pairs; further calls
 *   return 0 again), or DUMPFMT_ESYNTAX, DUMPFMT_ETOOBIG, DUMPFMT_EIO,
 *   DUMPFMT_ENOMEM, DUMPFMT_ESTATE. After an error every further call
 *   returns the same error.
 */
int dumpfmt_read_record(dumpfmt_reader *r, const uint8_t **key, size_t *klen,
                        const uint8_t **val, size_t *vlen);

/** The message of the reader's last error ("line 12, column 5: not a hex
 * digit"), or "" if none. Owned by the reader; valid until it is freed. */
const char *dumpfmt_errmsg(const dumpfmt_reader *r);

/** Number of the line the reader read last (1-based; 0 before any). */
uint64_t dumpfmt_line(const dumpfmt_reader *r);

/** Bytes of input consumed so far (for progress reports). */
uint64_t dumpfmt_consumed(const dumpfmt_reader *r);

/* ---- Writing ------------------------------------------------------------- */

/** Bytes dumpfmt_encode() may write for an item of n bytes (saturates at
 * SIZE_MAX). */
size_t dumpfmt_encoded_max(size_t n);

/**
 * Encodes the n bytes at p in the given format (without the leading space
 * or the newline) into out, which must hold dumpfmt_encoded_max(n) bytes.
 * @return the number of bytes written (not NUL-terminated).
 */
size_t dumpfmt_encode(int format, const void *p, size_t n, char *out);

/**
 * Decodes a hex string (pairs of digits, either case) of n characters into
 * out, which must hold n / 2 bytes.
 * @param outlen  receives the number of bytes decoded (on success)
 * @param bad     receives, on failure, the index of the first character that
 *                is not a hex digit, or n for an odd length (may be NULL)
 * @return 0, or -1 when s is not a hex string.
 */
int dumpfmt_hex_decode(const char *s, size_t n, uint8_t *out, size_t *outlen,
                       size_t *bad);

/**
 * Writes the header: VERSION=3, format=, type=btree, mapsize= (only when
 * mapsize is nonzero: a hint for mdb_load, whose default map is small) and
 * HEADER=END.
 * @return 0, or -1 when writing failed (errno set by stdio).
 */
int dumpfmt_write_header(FILE *f, int format, uint64_t mapsize);

/** Writes one item line (a key or a value): a space, the encoded bytes, a
 * newline. @return 0 or -1 (errno set). */
int dumpfmt_write_item(FILE *f, int format, const void *p, size_t n);

/** Writes DATA=END. @return 0 or -1 (errno set). */
int dumpfmt_write_end(FILE *f);

#endif
