/*
 * hold.h - a message held until end of data: mxmoat-proxy's holding mode (doc/architecture.md),
 * and mxmoat-milter's copy for rspamd, which is asked at end of message. Canonical CRLF content,
 * dot-unstuffed, kept in memory up to a threshold and past it in an unlinked temporary file in the
 * spool directory, never past a size limit.
 *
 * The functions that touch the file (moat_hold_append once past the threshold, moat_hold_read of
 * a spooled message) block on disk I/O: the proxy calls them on the libuv threadpool only. A hold
 * is used by one thread at a time. No libuv here, so the unit tests drive it directly.
 */
#ifndef MOAT_HOLD_H
#define MOAT_HOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct moat_hold;

/*
 * moat_hold_new - an empty hold: up to mem_max bytes in memory, then a file in spool_dir (copied),
 * refusing to grow past max bytes. No file is made until one is needed. NULL on out of memory.
 */
struct moat_hold *moat_hold_new(size_t mem_max, uint64_t max, const char *spool_dir);
/* moat_hold_free - closes (and so deletes) the file; NULL is a no-op. */
void moat_hold_free(struct moat_hold *h);

/*
 * moat_hold_append - add n bytes at the end. 0, or a negative errno: -EFBIG past max (nothing
 * added), -ENOMEM, or the error of making or writing the spool file (the hold is then unusable).
 * May block (file I/O): off the event loop only.
 */
int moat_hold_append(struct moat_hold *h, const char *p, size_t n);

/*
 * moat_hold_read - copy up to len bytes from offset off into out. Returns the bytes copied (0 at
 * the end) or a negative errno. Blocks when moat_hold_spooled: off the event loop only.
 */
ssize_t moat_hold_read(struct moat_hold *h, uint64_t off, char *out, size_t len);
/* moat_hold_reader - moat_hold_read with the hold as ARG: the core's moat_msg_read_fn. */
ssize_t moat_hold_reader(void *arg, uint64_t off, char *out, size_t len);

/* moat_hold_size - bytes held. */
uint64_t moat_hold_size(const struct moat_hold *h);
/* moat_hold_spooled - the content is in the spool file (reads block). */
bool moat_hold_spooled(const struct moat_hold *h);

/*
 * moat_hold_check_dir - can holds spool to DIR (an existing, searchable, writable directory)?
 * 0, or -1 with the reason, naming the configuration KEY that set DIR, in err. For start-up and
 * reload checks.
 */
int moat_hold_check_dir(const char *key, const char *dir, char *err, size_t errlen);

#endif /* MOAT_HOLD_H */
