/*
 * trust.c - outbound or inbound, and why (see trust.h). Rules are checked in a fixed order, and
 * the first that matches decides: authenticated sender, submission listener, internal network.
 */
#include "config.h"

#include <ctype.h>
#include <string.h>

#include "trust.h"

bool
moat_trust_list_has(const char *list, const char *item)
{
	size_t want;

	if (item == NULL || item[0] == '\0')
		return false;
	want = strlen(item);
	for (const char *p = list; *p != '\0';) {
		size_t len;
		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		len = strcspn(p, ", \t\r\n");
		if (len > 0 && len == want && strncmp(p, item, len) == 0)
			return true;
		p += len;
	}
	return false;
}

/* trust_is_submission - is LISTENER named in submission_listeners or proxy_submission_listen? */
static bool
trust_is_submission(const struct moat_conf *conf, const char *listener)
{
	return moat_trust_list_has(conf->submission_listeners, listener) ||
	    moat_trust_list_has(conf->proxy_submission_listen, listener);
}

enum moat_direction
moat_trust_direction(const struct moat_conf *conf, const struct moat_addr *client,
    const char *listener, bool authenticated, const char **why)
{
	if (authenticated && conf->trust_authenticated) {
		*why = "authenticated sender";
		return MOAT_OUTBOUND;
	}
	if (trust_is_submission(conf, listener)) {
		/* A submission listener without authentication is not trusted by itself: the front-end
		 * must require AUTH there; unauthenticated mail on it is still verified. */
		if (authenticated) {
			*why = "authenticated on a submission listener";
			return MOAT_OUTBOUND;
		}
	}
	if (client != NULL && moat_cidr_set_match(conf->internal_set, client)) {
		*why = "client in internal_networks";
		return MOAT_OUTBOUND;
	}
	*why = authenticated ? "authenticated, but trust_authenticated = no" : "external client";
	return MOAT_INBOUND;
}
