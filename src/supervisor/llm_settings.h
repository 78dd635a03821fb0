/* An llm actor's settings, given to `conclave actor add --kind llm` and stored with the actor
 * (data.llm of its actor.added event, and its record in group.json):
 *
 *   {"provider":"NAME","model":"M","system_prompt":"…","context_messages":20,
 *    "context_chars":16000,"concurrency":1,"daily_tokens":0,"max_tokens":0}
 *
 * Every key is optional; a missing one takes the default below, and provider/model follow the
 * configuration ([provider] default, [providers.NAME] model) as it is when a turn starts. */
#pragma once

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#define LLM_CONTEXT_MESSAGES_DEFAULT 20u
#define LLM_CONTEXT_MESSAGES_MAX 200u
#define LLM_CONTEXT_CHARS_DEFAULT 16000u
#define LLM_CONTEXT_CHARS_MIN 500u
#define LLM_CONTEXT_CHARS_MAX 100000u
#define LLM_CONCURRENCY_DEFAULT 1u
#define LLM_CONCURRENCY_MAX 16u
#define LLM_SYSTEM_PROMPT_MAX (16u * 1024u)
#define LLM_DAILY_TOKENS_MAX UINT64_C(1000000000000)

struct llm_settings {
        char *provider;      /* NULL: the default provider */
        char *model;         /* NULL: the provider's model */
        char *system_prompt; /* NULL: a short built-in one naming the actor and the group */
        unsigned context_messages;
        unsigned context_chars;
        unsigned concurrency;
        uint64_t daily_tokens; /* input + output tokens per UTC day; 0: no limit */
        unsigned max_tokens;   /* 0: the provider's max_tokens */
};

/* Defaults, then the keys of o (may be NULL). -EINVAL with err filled for a bad value or an
 * unknown key; -ENOMEM. */
int llm_settings_from_json(struct json_object *o, struct llm_settings *ret, char *err, size_t err_size);
/* Only the keys that differ from the defaults. */
struct json_object *llm_settings_to_json(const struct llm_settings *s);
void llm_settings_done(struct llm_settings *s);
