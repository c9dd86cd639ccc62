/*
 * trust.h - is a transaction outbound (sign) or inbound (verify)? Decided from data in the
 * configuration: internal_networks, submission_listeners, trust_authenticated.
 */
#ifndef MOAT_TRUST_H
#define MOAT_TRUST_H

#include <stdbool.h>

#include "cidr.h"
#include "conf.h"
#include "policy.h"

/*
 * moat_trust_direction - CLIENT may be NULL (address unknown or not IP); LISTENER may be NULL.
 * *why is set to a static phrase saying which rule decided, for the log.
 */
enum moat_direction moat_trust_direction(const struct moat_conf *conf,
    const struct moat_addr *client, const char *listener, bool authenticated, const char **why);

/* moat_trust_list_has - is ITEM one of the comma- or blank-separated names in LIST? */
bool moat_trust_list_has(const char *list, const char *item);

#endif /* MOAT_TRUST_H */
