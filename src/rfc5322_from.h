/*
 * rfc5322_from.h - the RFC5322.From author domain DMARC evaluates, taken strictly.
 *
 * DMARC (RFC 9989 4.4, 7489 6.6.1) needs exactly one From header field carrying exactly one
 * mailbox. Anything else - no From, several From fields (including "From :" written with
 * whitespace before the colon, which some MUAs display), several mailboxes, a group, unbalanced
 * brackets or quotes, an encoded-word that hides an address in the display name, a domain
 * literal, bytes a domain cannot carry - is an error: the "Composition Kills" (USENIX Security
 * 2020) ambiguities where the verifier and the MUA disagree about who sent the message.
 * Bounded: a field is at most MOAT_FROM_FIELD_MAX bytes, comments nest at most 8 deep.
 */
#ifndef MOAT_RFC5322_FROM_H
#define MOAT_RFC5322_FROM_H

#include <stdbool.h>
#include <stddef.h>

#define MOAT_FROM_FIELD_MAX 8192 /* longest From field we parse (folding included) */
#define MOAT_FROM_DOMAIN_MAX 253
#define MOAT_FROM_LOCAL_MAX 256

enum moat_from_status {
	MOAT_FROM_OK = 0,
	MOAT_FROM_NONE, /* no From field */
	MOAT_FROM_MULTIPLE, /* several From fields */
	MOAT_FROM_BAD, /* a From field that is not exactly one valid mailbox */
};

struct moat_from {
	enum moat_from_status status;
	char local[MOAT_FROM_LOCAL_MAX + 1]; /* as written (quotes removed), "" on error */
	char domain[MOAT_FROM_DOMAIN_MAX + 1]; /* lower case, no trailing dot, "" on error */
	const char *why; /* static reason on error */
	unsigned count; /* From fields seen */
};

/* moat_from_init - start a message. */
void moat_from_init(struct moat_from *f);

/*
 * moat_from_is_from - is FIELD (raw "Name: value") a From field? True for "From:" and for
 * "From" followed by spaces or tabs and a colon (obs-optional, RFC 5322 4.5.3), any case.
 */
bool moat_from_is_from(const char *field, size_t len);

/*
 * moat_from_field - feed one raw header field; From fields are counted and the first is parsed.
 * Other fields are ignored. Call moat_from_finish after the last header.
 */
void moat_from_field(struct moat_from *f, const char *field, size_t len);

/* moat_from_finish - the final status (NONE / MULTIPLE / BAD / OK). */
enum moat_from_status moat_from_finish(struct moat_from *f);

#endif /* MOAT_RFC5322_FROM_H */
