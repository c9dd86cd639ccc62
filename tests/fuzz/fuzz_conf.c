/*
 * fuzz_conf.c - arbitrary bytes as mxmoat.conf (src/conf.c and its table, src/conf_table.c): the
 * file is parsed, every value checked, and a snapshot that loads is dumped back (moat_conf_dump)
 * and must load again from that dump with the same dump: what --dump-config prints is a valid
 * configuration that means the same.
 *
 * Input: the file's bytes, written to a temporary directory made at the first input and removed at
 * exit (an "include"
 * line can only name what is there, or elsewhere on the machine: nothing is written but the
 * dump). The first line, when it has '=', is also tried as a -o override.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"

static char dir[64], file[96], redump[96];

/* cleanup - at exit: the temporary directory and what is in it. */
static void
cleanup(void)
{
	unlink(file);
	unlink(redump);
	rmdir(dir);
}

/* write_file - p[0..n) as PATH; abort on failure (the fuzzer's own I/O). */
static void
write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || (n > 0 && fwrite(p, 1, n, f) != n) || fclose(f) != 0)
		abort();
}

/* dump - the snapshot's every key, as text in a malloc'd buffer (*len bytes). */
static char *
dump(const struct moat_conf *conf, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);

	if (f == NULL)
		abort();
	moat_conf_dump(conf, ~0u, false, f);
	if (fclose(f) != 0)
		abort();
	return buf;
}

/* override - the first line as "key=value", when it is one. */
static void
override(const uint8_t *data, size_t size)
{
	char line[512], err[MOAT_CONF_ERR_MAX];
	const uint8_t *nl = memchr(data, '\n', size);
	size_t n = nl != NULL ? (size_t)(nl - data) : size;
	struct moat_conf_override ov;
	struct moat_conf *conf;

	if (n >= sizeof(line) || memchr(data, '\0', n) != NULL)
		return;
	memcpy(line, data, n);
	line[n] = '\0';
	if (moat_conf_parse_override(line, &ov) < 0)
		return;
	conf = moat_conf_load(NULL, &ov, 1, err, sizeof(err));
	moat_conf_unref(conf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[MOAT_CONF_ERR_MAX];
	struct moat_conf *conf, *again;
	char *d1, *d2;
	size_t n1, n2;

	if (dir[0] == '\0') {
		snprintf(dir, sizeof(dir), "/tmp/mxmoat-fuzz-conf.XXXXXX");
		if (mkdtemp(dir) == NULL)
			abort();
		snprintf(file, sizeof(file), "%s/mxmoat.conf", dir);
		snprintf(redump, sizeof(redump), "%s/dump.conf", dir);
		atexit(cleanup);
		moat_log_open("fuzz", MOAT_LOG_STDERR, false);
	}
	override(data, size);
	write_file(file, data, size);
	if ((conf = moat_conf_load(file, NULL, 0, err, sizeof(err))) == NULL)
		return 0;
	d1 = dump(conf, &n1);
	moat_conf_unref(conf);
	write_file(redump, d1, n1);
	if ((again = moat_conf_load(redump, NULL, 0, err, sizeof(err))) == NULL)
		abort(); /* the dump of a valid configuration does not load */
	d2 = dump(again, &n2);
	moat_conf_unref(again);
	if (n1 != n2 || memcmp(d1, d2, n1) != 0)
		abort(); /* the dump does not mean the same */
	free(d1);
	free(d2);
	return 0;
}
