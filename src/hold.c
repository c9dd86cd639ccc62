/*
 * hold.c - the held message of holding mode (see hold.h): a memory buffer that grows by doubling
 * up to the threshold, then an unlinked file in the spool directory. Owns both; hands out copies
 * of the content through moat_hold_read.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hold.h"

#define HOLD_MEM_FIRST ((size_t)16 * 1024) /* first allocation: most messages fit */

struct moat_hold {
	char *mem;
	size_t mem_len, mem_cap, mem_max;
	uint64_t size, max;
	int fd; /* -1 while in memory */
	int err; /* sticky: a failed spool makes the hold unusable */
	char dir[];
};

struct moat_hold *
moat_hold_new(size_t mem_max, uint64_t max, const char *spool_dir)
{
	size_t dl = strlen(spool_dir);
	struct moat_hold *h = calloc(1, sizeof(*h) + dl + 1);

	if (h == NULL)
		return NULL;
	h->mem_max = mem_max;
	h->max = max;
	h->fd = -1;
	memcpy(h->dir, spool_dir, dl + 1);
	return h;
}

void
moat_hold_free(struct moat_hold *h)
{
	if (h == NULL)
		return;
	if (h->fd >= 0)
		close(h->fd);
	free(h->mem);
	free(h);
}

/* hold_open - an anonymous file in the spool directory: O_TMPFILE, else mkstemp + unlink. */
static int
hold_open(const char *dir)
{
	char path[4096];
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	int n;

	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR))
		return fd >= 0 ? fd : -errno;
	/* file systems without O_TMPFILE: the name exists only between these two calls */
	n = snprintf(path, sizeof(path), "%s/mxmoat-hold.XXXXXX", dir);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	if ((fd = mkostemp(path, O_CLOEXEC)) < 0)
		return -errno;
	if (unlink(path) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

/* hold_write - all of p[0..n) to the file (write may be partial). */
static int
hold_write(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* hold_spill - move the memory content into a new spool file. */
static int
hold_spill(struct moat_hold *h)
{
	int fd = hold_open(h->dir), rc;

	if (fd < 0)
		return fd;
	if ((rc = hold_write(fd, h->mem, h->mem_len)) < 0) {
		close(fd);
		return rc;
	}
	h->fd = fd;
	free(h->mem);
	h->mem = NULL;
	h->mem_len = h->mem_cap = 0;
	return 0;
}

int
moat_hold_append(struct moat_hold *h, const char *p, size_t n)
{
	int rc;

	if (h->err != 0)
		return h->err;
	if (n == 0)
		return 0; /* an empty message: h->mem may still be NULL, memcpy must not see it */
	if (n > h->max - h->size)
		return -EFBIG;
	if (h->fd < 0 && h->mem_len + n <= h->mem_max) {
		if (h->mem_len + n > h->mem_cap) {
			size_t cap = h->mem_cap ? h->mem_cap : HOLD_MEM_FIRST;
			char *m;

			while (cap < h->mem_len + n)
				cap *= 2;
			if (cap > h->mem_max)
				cap = h->mem_max;
			if ((m = realloc(h->mem, cap)) == NULL)
				return -ENOMEM;
			h->mem = m;
			h->mem_cap = cap;
		}
		memcpy(h->mem + h->mem_len, p, n);
		h->mem_len += n;
		h->size += n;
		return 0;
	}
	if ((h->fd < 0 && (rc = hold_spill(h)) < 0) || (rc = hold_write(h->fd, p, n)) < 0) {
		h->err = rc;
		return rc;
	}
	h->size += n;
	return 0;
}

ssize_t
moat_hold_read(struct moat_hold *h, uint64_t off, char *out, size_t len)
{
	ssize_t r;

	if (off >= h->size)
		return 0;
	if (len > h->size - off)
		len = (size_t)(h->size - off);
	if (h->fd < 0) {
		memcpy(out, h->mem + off, len);
		return (ssize_t)len;
	}
	do
		r = pread(h->fd, out, len, (off_t)off);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -EIO; /* shorter than what we wrote */
	return r;
}

ssize_t
moat_hold_reader(void *arg, uint64_t off, char *out, size_t len)
{
	return moat_hold_read(arg, off, out, len);
}

uint64_t
moat_hold_size(const struct moat_hold *h)
{
	return h->size;
}

bool
moat_hold_spooled(const struct moat_hold *h)
{
	return h->fd >= 0;
}

int
moat_hold_check_dir(const char *key, const char *dir, char *err, size_t errlen)
{
	struct stat st;

	if (dir[0] != '/') {
		snprintf(err, errlen, "%s %s: not an absolute path", key, dir);
		return -1;
	}
	if (stat(dir, &st) < 0) {
		snprintf(err, errlen, "%s %s: %s", key, dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s %s: not a directory", key, dir);
		return -1;
	}
	if (access(dir, W_OK | X_OK) < 0) {
		snprintf(err, errlen, "%s %s: %s", key, dir, strerror(errno));
		return -1;
	}
	return 0;
}
