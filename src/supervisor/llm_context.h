/* The conversation an llm actor is shown for one turn, from ledger messages: the actor's own
 * messages become "assistant" turns, everybody else's "user" turns prefixed with who said it
 * ("alice: …"), consecutive turns of one role are joined (Anthropic wants them alternating),
 * a leading assistant turn is dropped (the first must be the user's), and the message being
 * answered is always last. History is taken newest first while it fits the message and
 * character budgets, so the most recent context survives. Pure: no ledger access here. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

struct llm_context_item {
        const char *by;
        const char *text;
};

/* history: earlier messages, NEWEST FIRST; current: the message being answered. max_messages
 * and max_chars bound the history (the current message is always included). *ret: a JSON
 * array of {"role","content"}. *ret_used (optional): how many history items went in. */
int llm_context_build(const char *actor_id, const struct llm_context_item *history, size_t n_history,
                      const struct llm_context_item *current, size_t max_messages, size_t max_chars,
                      struct json_object **ret, size_t *ret_used);

/* The built-in system prompt for an actor without one. Newly allocated. */
char *llm_default_system_prompt(const char *actor_id, const char *actor_title, const char *group_id,
                                const char *group_title);
