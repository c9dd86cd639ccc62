/*
 * msg_feed.c - a message in memory through the header reader to the authentication engine and
 * the ARC verifier (msg_feed.h).
 */
#include "config.h"

#include <stdlib.h>

#include "hdr_reader.h"
#include "msg_feed.h"

int
moat_msg_feed(const struct moat_conf *conf, struct moat_auth_msg *am, struct moat_arc_msg *arc,
    const char *msg, size_t len, struct moat_verdict *v)
{
	struct moat_hdr_reader *r = malloc(sizeof(*r));
	struct moat_hdr_event ev = { .kind = MOAT_HDR_MORE };

	if (r == NULL) {
		moat_verdict_set(v, MOAT_TEMPFAIL, 451, "4.3.0", "out_of_memory", "Local error");
		return -1;
	}
	moat_hdr_init(r);
	while (ev.kind != MOAT_HDR_END && ev.kind != MOAT_HDR_ERROR) {
		if (len > 0) {
			size_t used = moat_hdr_feed(r, msg, len, &ev);

			msg += used;
			len -= used;
		} else {
			moat_hdr_finish(r, &ev);
		}
		if (ev.kind == MOAT_HDR_FIELD && arc != NULL)
			moat_arc_header(arc, ev.field, ev.len);
		if (ev.kind == MOAT_HDR_FIELD)
			moat_auth_header(am, ev.field, ev.len);
	}
	free(r);
	if (ev.kind == MOAT_HDR_ERROR) {
		moat_hdr_verdict(conf, ev.status, v);
		return -1;
	}
	moat_auth_eoh(am);
	if (arc != NULL)
		moat_arc_eoh(arc);
	if (len > 0) {
		moat_auth_body(am, msg, len);
		if (arc != NULL)
			moat_arc_body(arc, msg, len);
	}
	return 0;
}
