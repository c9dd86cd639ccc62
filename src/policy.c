/*
 * policy.c - the shared policy object (see policy.h): the current configuration snapshot, the
 * rate limiter, the tables sessions share and the front-end's part (the proxy's TLS contexts),
 * replaced together by a reload. Owns struct moat_policy (session_int.h). Sessions are in
 * session.c; the events they report, which run the check table, in session_events.c.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "auth.h"
#include "metrics.h"
#include "policy.h"
#include "ratelimit.h"
#include "scan.h"
#include "session_int.h"
#include "sesscount.h"


/* ---- the shared policy object ---- */

struct moat_policy *
moat_policy_new(struct moat_conf *conf, unsigned flags, char *err, size_t errlen)
{
	struct moat_policy *pol = calloc(1, sizeof(*pol));

	if (pol == NULL || (pol->sessions = moat_sesscount_new()) == NULL ||
	    (pol->metrics = moat_metrics_new()) == NULL ||
	    (pol->scan_health = moat_scan_health_new()) == NULL) {
		snprintf(err, errlen, "out of memory");
		if (pol != NULL) {
			moat_sesscount_free(pol->sessions);
			moat_metrics_free(pol->metrics);
		}
		free(pol);
		return NULL;
	}
	if ((pol->rl = moat_ratelimit_new(conf, err, errlen)) == NULL) {
		moat_sesscount_free(pol->sessions);
		moat_metrics_free(pol->metrics);
		moat_scan_health_free(pol->scan_health);
		free(pol);
		return NULL;
	}
	moat_ratelimit_set_metrics(pol->rl, pol->metrics);
	pol->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	pthread_mutex_init(&pol->lock, NULL);
	pol->conf = moat_conf_ref(conf);
	pol->flags = flags;
	return pol;
}

void
moat_policy_free(struct moat_policy *pol)
{
	if (pol == NULL)
		return;
	moat_conf_unref(pol->conf);
	moat_ratelimit_free(pol->rl);
	moat_sesscount_free(pol->sessions);
	moat_auth_engine_free(pol->auth);
	moat_metrics_free(pol->metrics);
	moat_scan_health_free(pol->scan_health);
	EVP_MD_free(pol->sha256);
	if (pol->fe_ops != NULL)
		pol->fe_ops->unref(pol->fe);
	pthread_mutex_destroy(&pol->lock);
	free(pol);
}

void
moat_policy_set_frontend(struct moat_policy *pol, const struct moat_frontend_ops *ops, void *fe)
{
	pol->fe_ops = ops;
	pol->fe = fe;
}

void *
moat_policy_frontend(struct moat_policy *pol)
{
	void *fe = NULL;

	if (pol->fe_ops == NULL)
		return NULL;
	pthread_mutex_lock(&pol->lock);
	if (pol->fe != NULL)
		fe = pol->fe_ops->ref(pol->fe);
	pthread_mutex_unlock(&pol->lock);
	return fe;
}

int
moat_policy_reload(struct moat_policy *pol, struct moat_conf *conf, char *err, size_t errlen)
{
	struct moat_conf *old;
	void *fe = NULL, *old_fe = NULL;

	/* the front-end's part is built outside the lock (it reads files: certificates) from the
	 * running one, which only reloads replace, and reloads come from one thread */
	if (pol->fe_ops != NULL) {
		old_fe = moat_policy_frontend(pol);
		fe = pol->fe_ops->build(old_fe, conf, err, errlen);
		pol->fe_ops->unref(old_fe);
		if (fe == NULL)
			return -2;
	}
	pthread_mutex_lock(&pol->lock);
	/* the rules next: they are the part that can still fail, and then nothing has changed */
	if (moat_ratelimit_reload(pol->rl, conf, err, errlen) < 0) {
		pthread_mutex_unlock(&pol->lock);
		if (fe != NULL)
			pol->fe_ops->unref(fe);
		return -1;
	}
	old = pol->conf;
	pol->conf = moat_conf_ref(conf);
	moat_metrics_generation_next(pol->metrics);
	old_fe = pol->fe;
	pol->fe = fe;
	pthread_mutex_unlock(&pol->lock);
	moat_conf_unref(old);
	if (pol->fe_ops != NULL)
		pol->fe_ops->unref(old_fe);
	return 0;
}

struct moat_ratelimit *
moat_policy_ratelimit(struct moat_policy *pol)
{
	return pol->rl;
}

struct moat_metrics *
moat_policy_metrics(struct moat_policy *pol)
{
	return pol->metrics;
}

void
moat_policy_flush(struct moat_policy *pol)
{
	struct moat_auth_engine *auth;

	pthread_mutex_lock(&pol->lock);
	auth = pol->auth; /* set once, freed only with the policy */
	pthread_mutex_unlock(&pol->lock);
	moat_auth_engine_flush(auth);
}

struct moat_conf *
moat_policy_conf(struct moat_policy *pol)
{
	struct moat_conf *conf;

	pthread_mutex_lock(&pol->lock);
	conf = moat_conf_ref(pol->conf);
	pthread_mutex_unlock(&pol->lock);
	return conf;
}
