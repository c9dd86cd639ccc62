/*
 * test_hold.c - the held message of the proxy's holding mode: memory up to the threshold, then an
 * unlinked file in the spool directory with the same bytes, never past the size limit, and a
 * spool directory that cannot be written is an error the caller sees (the proxy answers 451).
 */
#include "config.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hold.h"

static char dir[64];

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/test_hold.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void
teardown(void)
{
	rmdir(dir);
}

/* dir_entries - names in the spool directory besides . and .. */
static int
dir_entries(void)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	cr_assert_not_null(d);
	while ((de = readdir(d)) != NULL)
		n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	return n;
}

/* read_all - the held content, read back in pieces of step bytes. */
static size_t
read_all(struct moat_hold *h, char *out, size_t cap, size_t step)
{
	size_t off = 0;
	ssize_t r;

	while ((r = moat_hold_read(h, off, out + off, step < cap - off ? step : cap - off)) > 0)
		off += (size_t)r;
	cr_assert_geq(r, 0);
	return off;
}

static void
fill(char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (char)('a' + i % 26);
}

Test(hold, small_message_stays_in_memory, .init = setup, .fini = teardown)
{
	struct moat_hold *h = moat_hold_new(1024, 4096, dir);
	char out[64];

	cr_assert_not_null(h);
	cr_assert_eq(moat_hold_append(h, "Subject: x\r\n\r\nbody\r\n", 20), 0);
	cr_assert_eq(moat_hold_size(h), 20);
	cr_assert(!moat_hold_spooled(h));
	cr_assert_eq(read_all(h, out, sizeof(out), 7), 20);
	cr_assert_eq(memcmp(out, "Subject: x\r\n\r\nbody\r\n", 20), 0);
	cr_assert_eq(moat_hold_read(h, 20, out, sizeof(out)), 0);
	moat_hold_free(h);
}

/* An empty message (".\r\n" in holding mode) appends nothing to a hold that has no memory yet. */
Test(hold, empty_append_to_a_new_hold, .init = setup, .fini = teardown)
{
	struct moat_hold *h = moat_hold_new(1024, 4096, dir);
	char out[8];

	cr_assert_not_null(h);
	cr_assert_eq(moat_hold_append(h, out, 0), 0);
	cr_assert_eq(moat_hold_size(h), 0);
	cr_assert_eq(moat_hold_read(h, 0, out, sizeof(out)), 0);
	cr_assert_eq(moat_hold_append(h, "x\r\n", 3), 0);
	cr_assert_eq(read_all(h, out, sizeof(out), 2), 3);
	cr_assert_eq(memcmp(out, "x\r\n", 3), 0);
	moat_hold_free(h);
}

Test(hold, past_the_threshold_spools_to_an_unlinked_file, .init = setup, .fini = teardown)
{
	static char in[300000], out[300000];
	struct moat_hold *h = moat_hold_new(65536, sizeof(in), dir);
	size_t off = 0;

	fill(in, sizeof(in));
	cr_assert_not_null(h);
	/* uneven pieces: the threshold is crossed in the middle of one */
	while (off < sizeof(in)) {
		size_t k = sizeof(in) - off < 7777 ? sizeof(in) - off : 7777;

		cr_assert_eq(moat_hold_append(h, in + off, k), 0);
		cr_assert_eq(moat_hold_spooled(h), off + k > 65536, "at %zu", off + k);
		off += k;
	}
	cr_assert_eq(dir_entries(), 0, "the spool file has no name");
	cr_assert_eq(moat_hold_size(h), sizeof(in));
	cr_assert_eq(read_all(h, out, sizeof(out), 65536), sizeof(in));
	cr_assert_eq(memcmp(in, out, sizeof(in)), 0);
	moat_hold_free(h);
	cr_assert_eq(dir_entries(), 0);
}

Test(hold, never_past_the_size_limit, .init = setup, .fini = teardown)
{
	struct moat_hold *h = moat_hold_new(16, 100, dir);
	char buf[101];

	fill(buf, sizeof(buf));
	cr_assert_eq(moat_hold_append(h, buf, 60), 0);
	cr_assert_eq(moat_hold_append(h, buf, 41), -EFBIG);
	cr_assert_eq(moat_hold_size(h), 60, "nothing of the refused piece is kept");
	cr_assert_eq(moat_hold_append(h, buf, 40), 0);
	cr_assert_eq(moat_hold_size(h), 100);
	cr_assert_eq(moat_hold_append(h, buf, 1), -EFBIG);
	moat_hold_free(h);
}

Test(hold, missing_spool_dir_fails_when_the_file_is_needed, .init = setup, .fini = teardown)
{
	char gone[80];
	char buf[64];
	struct moat_hold *h;

	snprintf(gone, sizeof(gone), "%s/none", dir);
	h = moat_hold_new(32, 1000, gone);
	fill(buf, sizeof(buf));
	cr_assert_eq(moat_hold_append(h, buf, 32), 0, "memory needs no directory");
	cr_assert_eq(moat_hold_append(h, buf, 1), -ENOENT);
	cr_assert_eq(moat_hold_append(h, buf, 1), -ENOENT, "the error sticks");
	moat_hold_free(h);
}

Test(hold, check_dir, .init = setup, .fini = teardown)
{
	char err[256], file[80];
	FILE *f;

	cr_assert_eq(moat_hold_check_dir("proxy_spool_dir", dir, err, sizeof(err)), 0);
	cr_assert_eq(moat_hold_check_dir("proxy_spool_dir", "relative/dir", err, sizeof(err)), -1);
	cr_assert_str_eq(err, "proxy_spool_dir relative/dir: not an absolute path");
	snprintf(file, sizeof(file), "%s/f", dir);
	cr_assert_not_null(f = fopen(file, "w"));
	fclose(f);
	cr_assert_eq(moat_hold_check_dir("proxy_spool_dir", file, err, sizeof(err)), -1);
	cr_assert(strstr(err, "not a directory") != NULL, "%s", err);
	unlink(file);
	cr_assert_eq(moat_hold_check_dir("proxy_spool_dir", file, err, sizeof(err)), -1);
	cr_assert(strstr(err, "No such file") != NULL, "%s", err);
}
