/*
 * callbacks.h - the libmilter callbacks: MTA events in, core verdicts and header edits out.
 */
#ifndef MOAT_MILTER_CALLBACKS_H
#define MOAT_MILTER_CALLBACKS_H

#include <libmilter/mfapi.h>

#include "policy.h"

/*
 * milter_callbacks_init - fill desc with our callbacks and remember pol (borrowed: it must
 * outlive smfi_main). Called once before smfi_register.
 */
void milter_callbacks_init(struct smfiDesc *desc, struct moat_policy *pol);

#endif /* MOAT_MILTER_CALLBACKS_H */
