/*
 * packet.c - decoding the MTA's milter packets and encoding our replies (see packet.h).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "packet.h"

#define LEN_BYTES ((size_t)4)
#define OPTNEG_BYTES ((size_t)12) /* version, actions, protocol */

static uint32_t
get32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;

	return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | (uint32_t)u[3];
}

static void
put32(char *p, uint32_t v)
{
	p[0] = (char)(v >> 24);
	p[1] = (char)(v >> 16);
	p[2] = (char)(v >> 8);
	p[3] = (char)v;
}

enum milter_pkt_rc
milter_pkt_frame(const char *p, size_t n, size_t max, char *cmd, const char **data, size_t *len,
    size_t *used, size_t *need)
{
	uint32_t plen;

	*need = 0;
	if (n < LEN_BYTES)
		return MILTER_PKT_NEED;
	plen = get32(p);
	if (plen == 0 || plen > max || plen > MILTER_PKT_MAX)
		return MILTER_PKT_BAD;
	if (n - LEN_BYTES < plen) {
		*need = LEN_BYTES + (size_t)plen;
		return MILTER_PKT_NEED;
	}
	*cmd = p[LEN_BYTES];
	*data = p + LEN_BYTES + 1;
	*len = (size_t)plen - 1;
	*used = LEN_BYTES + (size_t)plen;
	return MILTER_PKT_OK;
}

/* take_str - the NUL-terminated string at *p within end, advancing *p past its NUL; NULL if it
 * has none there. */
static const char *
take_str(const char **p, const char *end)
{
	const char *s = *p, *nul;

	if (s >= end || (nul = memchr(s, '\0', (size_t)(end - s))) == NULL)
		return NULL;
	*p = nul + 1;
	return s;
}

/* decode_connect - host NUL family [port(2) address NUL] */
static enum milter_pkt_rc
decode_connect(const char *p, const char *end, struct milter_cmd *out)
{
	const unsigned char *u;

	if ((out->u.connect.host = take_str(&p, end)) == NULL || p >= end)
		return MILTER_PKT_BAD;
	out->u.connect.family = *p++;
	out->u.connect.port = 0;
	out->u.connect.addr = "";
	switch (out->u.connect.family) {
	case 'U':
		return p == end ? MILTER_PKT_OK : MILTER_PKT_BAD;
	case '4':
	case '6':
	case 'L':
		break;
	default:
		return MILTER_PKT_BAD;
	}
	if (end - p < 2)
		return MILTER_PKT_BAD;
	u = (const unsigned char *)p;
	out->u.connect.port = (unsigned)u[0] << 8 | u[1];
	p += 2;
	if ((out->u.connect.addr = take_str(&p, end)) == NULL || p != end)
		return MILTER_PKT_BAD;
	return MILTER_PKT_OK;
}

/* decode_macros - stage, then name NUL value NUL pairs */
static enum milter_pkt_rc
decode_macros(const char *p, const char *end, struct milter_cmd *out)
{
	size_t count = 0;

	if (p >= end)
		return MILTER_PKT_BAD;
	out->u.macros.stage = *p++;
	out->u.macros.pairs = p;
	out->u.macros.len = (size_t)(end - p);
	while (p < end) {
		const char *name = take_str(&p, end);
		const char *value = name != NULL ? take_str(&p, end) : NULL;
		if (value == NULL || ++count > MILTER_MACROS_MAX)
			return MILTER_PKT_BAD;
	}
	out->u.macros.count = count;
	return MILTER_PKT_OK;
}

/* decode_args - MAIL and RCPT: one or more strings, the path first */
static enum milter_pkt_rc
decode_args(const char *p, const char *end, struct milter_cmd *out)
{
	size_t argc = 0;

	while (p < end) {
		if (argc == MILTER_ARGS_MAX || (out->u.env.argv[argc] = take_str(&p, end)) == NULL)
			return MILTER_PKT_BAD;
		argc++;
	}
	if (argc == 0)
		return MILTER_PKT_BAD;
	out->u.env.argv[argc] = NULL;
	out->u.env.argc = argc;
	return MILTER_PKT_OK;
}

enum milter_pkt_rc
milter_cmd_decode(char cmd, const char *data, size_t len, struct milter_cmd *out)
{
	const char *p = data, *end = data + len;

	out->cmd = cmd;
	switch (cmd) {
	case MILTER_C_OPTNEG:
		/* version, actions, protocol; later versions may append more, which we ignore */
		if (len < OPTNEG_BYTES)
			return MILTER_PKT_BAD;
		out->u.optneg.version = get32(p);
		out->u.optneg.actions = get32(p + 4);
		out->u.optneg.protocol = get32(p + 8);
		return MILTER_PKT_OK;
	case MILTER_C_MACRO:
		return decode_macros(p, end, out);
	case MILTER_C_CONNECT:
		return decode_connect(p, end, out);
	case MILTER_C_HELO:
		out->u.helo.name = take_str(&p, end);
		return out->u.helo.name != NULL && p == end ? MILTER_PKT_OK : MILTER_PKT_BAD;
	case MILTER_C_MAIL:
	case MILTER_C_RCPT:
		return decode_args(p, end, out);
	case MILTER_C_HEADER:
		if ((out->u.header.name = take_str(&p, end)) == NULL ||
		    (out->u.header.value = take_str(&p, end)) == NULL || p != end)
			return MILTER_PKT_BAD;
		out->u.header.value_len = (size_t)(end - out->u.header.value) - 1;
		return MILTER_PKT_OK;
	case MILTER_C_BODY:
	case MILTER_C_EOM:
		out->u.body.p = data;
		out->u.body.len = len;
		return MILTER_PKT_OK;
	case MILTER_C_UNKNOWN:
		out->u.unknown.line = take_str(&p, end);
		return out->u.unknown.line != NULL && p == end ? MILTER_PKT_OK : MILTER_PKT_BAD;
	case MILTER_C_DATA:
	case MILTER_C_EOH:
	case MILTER_C_ABORT:
	case MILTER_C_QUIT:
	case MILTER_C_QUIT_NC:
		return len == 0 ? MILTER_PKT_OK : MILTER_PKT_BAD;
	default:
		return MILTER_PKT_BAD;
	}
}

const char *
milter_macro_find(const char *pairs, size_t len, const char *name)
{
	const char *p = pairs, *end = pairs + len;

	while (p < end) {
		const char *n = take_str(&p, end), *v = take_str(&p, end);
		if (n == NULL || v == NULL)
			return NULL;
		if (strcmp(n, name) == 0)
			return v;
	}
	return NULL;
}

/* ---- encoder ---- */

/* put_begin - room for a packet of cmd with dlen data bytes at out + *len: the header written,
 * the data's start returned; NULL when it does not fit. */
static char *
put_begin(char *out, const size_t *len, size_t cap, char cmd, size_t dlen)
{
	char *p = out + *len;

	if (cap < *len || dlen > MILTER_PKT_MAX - 1 || cap - *len < LEN_BYTES + 1 + dlen)
		return NULL;
	put32(p, (uint32_t)(dlen + 1));
	p[LEN_BYTES] = cmd;
	return p + LEN_BYTES + 1;
}

/* put_strs - a packet whose data is an optional 32-bit index then NUL-terminated strings */
static int
put_strs(char *out, size_t *len, size_t cap, char cmd, const uint32_t *index,
    const char *const *strs, size_t nstrs)
{
	size_t dlen = index != NULL ? LEN_BYTES : 0;
	char *p;

	for (size_t i = 0; i < nstrs; i++) {
		size_t l = strlen(strs[i]) + 1;
		if (l > MILTER_PKT_MAX)
			return -1;
		dlen += l;
	}
	if ((p = put_begin(out, len, cap, cmd, dlen)) == NULL)
		return -1;
	if (index != NULL) {
		put32(p, *index);
		p += LEN_BYTES;
	}
	for (size_t i = 0; i < nstrs; i++) {
		size_t l = strlen(strs[i]) + 1;
		memcpy(p, strs[i], l);
		p += l;
	}
	*len += LEN_BYTES + 1 + dlen;
	return 0;
}

int
milter_put_simple(char *out, size_t *len, size_t cap, char code)
{
	if (put_begin(out, len, cap, code, 0) == NULL)
		return -1;
	*len += LEN_BYTES + 1;
	return 0;
}

int
milter_put_replycode(char *out, size_t *len, size_t cap, unsigned code, const char *status,
    const char *text)
{
	char line[512];
	size_t n;

	if (code < 400 || code > 599 || (text != NULL && strpbrk(text, "\r\n") != NULL))
		return -1;
	n = (size_t)snprintf(line, sizeof(line), "%u", code);
	if (status != NULL && status[0] != '\0')
		n += (size_t)snprintf(line + n, sizeof(line) - n, " %s", status);
	if (n < sizeof(line) && text != NULL && text[0] != '\0')
		n += (size_t)snprintf(line + n, sizeof(line) - n, " %s", text);
	if (n >= sizeof(line))
		return -1;
	return milter_put_replyline(out, len, cap, line);
}

int
milter_put_replyline(char *out, size_t *len, size_t cap, const char *line)
{
	const char *const strs[] = { line };

	return put_strs(out, len, cap, MILTER_R_REPLYCODE, NULL, strs, 1);
}

int
milter_put_header(char *out, size_t *len, size_t cap, char op, uint32_t index, const char *name,
    const char *value)
{
	const char *const strs[] = { name, value };

	if (op != MILTER_R_ADDHEADER && op != MILTER_R_INSHEADER && op != MILTER_R_CHGHEADER)
		return -1;
	return put_strs(out, len, cap, op, op == MILTER_R_ADDHEADER ? NULL : &index, strs, 2);
}

int
milter_put_quarantine(char *out, size_t *len, size_t cap, const char *reason)
{
	const char *const strs[] = { reason };

	return put_strs(out, len, cap, MILTER_R_QUARANTINE, NULL, strs, 1);
}

int
milter_put_optneg(char *out, size_t *len, size_t cap, uint32_t version, uint32_t actions,
    uint32_t protocol, const char *const lists[MILTER_STAGE_COUNT])
{
	size_t dlen = OPTNEG_BYTES;
	char *p;

	for (size_t i = 0; lists != NULL && i < MILTER_STAGE_COUNT; i++)
		if (lists[i] != NULL)
			dlen += LEN_BYTES + strlen(lists[i]) + 1;
	if ((p = put_begin(out, len, cap, MILTER_R_OPTNEG, dlen)) == NULL)
		return -1;
	put32(p, version);
	put32(p + 4, actions);
	put32(p + 8, protocol);
	p += OPTNEG_BYTES;
	for (size_t i = 0; lists != NULL && i < MILTER_STAGE_COUNT; i++) {
		size_t l;
		if (lists[i] == NULL)
			continue;
		l = strlen(lists[i]) + 1;
		put32(p, (uint32_t)i);
		memcpy(p + LEN_BYTES, lists[i], l);
		p += LEN_BYTES + l;
	}
	*len += LEN_BYTES + 1 + dlen;
	return 0;
}
