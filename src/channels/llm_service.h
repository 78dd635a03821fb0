/* The LLM side of conclave-channels: the supervisor's requests over the worker channel.
 *
 *   llm.complete     {provider, model?, system?, messages:[{role,content}], max_tokens?,
 *                     group?, actor?}   → one reply when the turn is over:
 *                    {"ok":true,"result":{text, truncated, provider, model, finish_reason,
 *                     usage:{input_tokens,output_tokens}|null, attempts,
 *                     timing:{started_usec,sent_usec,first_byte_usec,last_byte_usec}}}
 *                    {"ok":false,"error":{code, message, status, attempts, retry_after_ms}}
 *                    Sent as a streaming call, so the supervisor can cancel it ("cancel").
 *   provider.check   {provider?} → {"ok":true,"result":[…provider_check.h objects…]}
 *
 * Provider settings come from the worker's current configuration when a request starts; a
 * reload does not disturb turns already running. */
#pragma once

#include "http_engine.h"
#include "worker.h"

struct llm_service;

/* engine: the process's HTTP engine to share, or NULL to make one. Registers a worker handler;
 * call after worker_init(). */
int llm_service_new(struct worker *w, struct http_engine *engine, struct llm_service **ret);
struct llm_service *llm_service_free(struct llm_service *s);
/* Turns running now. */
size_t llm_service_active(const struct llm_service *s);
