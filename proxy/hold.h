/*
 * hold.h - the message mxmoat-proxy holds until end of data (holding mode, see
 * doc/architecture.md): canonical CRLF content, dot-unstuffed, kept in memory up to a threshold
 * and past it in an unlinked temporary file in the spool directory, never past a size limit.
 *
 * The functions that touch the file (px_hold_append once past the threshold, px_hold_read of a
 * spooled message) block on disk I/O: the proxy calls them on the libuv threadpool only. A hold is
 * used by one thread at a time. No libuv here, so the unit tests drive it directly.
 */
#ifndef PX_HOLD_H
#define PX_HOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct px_hold;

/*
 * px_hold_new - an empty hold: up to mem_max bytes in memory, then a file in spool_dir (copied),
 * refusing to grow past max bytes. No file is made until one is needed. NULL on out of memory.
 */
struct px_hold *px_hold_new(size_t mem_max, uint64_t max, const char *spool_dir);
/* px_hold_free - closes (and so deletes) the file; NULL is a no-op. */
void px_hold_free(struct px_hold *h);

/*
 * px_hold_append - add n bytes at the end. 0, or a negative errno: -EFBIG past max (nothing
 * added), -ENOMEM, or the error of making or writing the spool file (the hold is then unusable).
 * May block (file I/O): off the event loop only.
 */
int px_hold_append(struct px_hold *h, const char *p, size_t n);

/*
 * px_hold_read - copy up to len bytes from offset off into out. Returns the bytes copied (0 at
 * the end) or a negative errno. Blocks when px_hold_spooled: off the event loop only.
 */
ssize_t px_hold_read(struct px_hold *h, uint64_t off, char *out, size_t len);

/* px_hold_size - bytes held. */
uint64_t px_hold_size(const struct px_hold *h);
/* px_hold_spooled - the content is in the spool file (reads block). */
bool px_hold_spooled(const struct px_hold *h);

/*
 * px_hold_check_dir - can holds spool to DIR (an existing, searchable, writable directory)?
 * 0, or -1 with the reason in err. For start-up and reload checks.
 */
int px_hold_check_dir(const char *dir, char *err, size_t errlen);

#endif /* PX_HOLD_H */
