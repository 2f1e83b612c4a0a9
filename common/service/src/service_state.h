/*
 * service_state.h - internals of the stage service: loading and saving an
 * engine's mlsec_engine_state in Redis around one analysis.
 */
#ifndef MLSEC_SERVICE_STATE_INT_H
#define MLSEC_SERVICE_STATE_INT_H

#include <stddef.h>

#include "mlsec/engine.h"
#include "mlsec/service.h"
#include "mlsec/store.h"
#include "mlsec/v1/analyzer.pb-c.h"

/*
 * Finds the state key (into key, "" when none) and, unless the request
 * already sets the inline option, loads the stored document into
 * (*options)[in_option] (creating *options when NULL). Nothing to do
 * without eng->state or st. Errors: MLSEC_ERR_UNAVAILABLE (Redis: retry
 * the job), INVALID_ARG / PARSE (a stage ERROR).
 */
mlsec_err service_state_load(const mlsec_engine *eng, mlsec_store *st,
                             const Mlsec__V1__StageRequest *req, json_t **options, char *key,
                             size_t keysz, mlsec_error *err);

/* Stores the first artifact detail out_detail that is an object under
 * key (no-op when key is ""). Redis errors are returned. */
mlsec_err service_state_save(const mlsec_engine *eng, mlsec_store *st, const char *key,
                             mlsec_report *rep, mlsec_error *err);

#endif
