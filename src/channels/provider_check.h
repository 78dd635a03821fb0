/* Live checks of the configured LLM providers, for `conclave doctor` (through the daemon's
 * provider.check operation, or in the CLI's own process when the daemon is not running) and
 * for `conclave channel doctor`: is the server reachable, is the API key accepted, does the
 * configured model exist. Each check is one small GET (openai: {base_url}/models; anthropic:
 * /v1/models/{model}; ollama: /api/tags) that costs no tokens. */
#pragma once

#include <json-c/json.h>
#include <stdint.h>

#include "http_engine.h"

struct config;
struct config_provider;
struct provider_checks;

#define PROVIDER_CHECK_TIMEOUT_USEC (10ull * 1000000ull)

/* Gets the results as a JSON array (borrowed), one object per provider:
 *   {"provider","kind","model","url","ok":bool,"auth":"ok"|"refused"|"not_checked",
 *    "model_found":bool|null,"status":N|null,"message":"…","elapsed_ms":N} */
typedef void (*provider_checks_done_fn)(struct json_object *results, void *userdata);

/* Checks every provider of c (or only the one called `only`; -ENOENT if there is none), all at
 * once. c is only read during this call. done is called from the loop, never from here. */
int provider_checks_start(sd_event *event, struct http_engine *engine, const struct config *c, const char *only,
                          uint64_t timeout_usec, provider_checks_done_fn done, void *userdata,
                          struct provider_checks **ret);
/* Frees it: no callback afterwards. Also the way to free it once done ran (from done too). */
void provider_checks_cancel(struct provider_checks *pc);
