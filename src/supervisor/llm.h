/* llm actors: when a message they should answer is durable, build the conversation from the
 * ledger, ask conclave-channels (llm.complete over the worker channel) and post the answer as a
 * chat.message replying to it, which closes a reply_required obligation. Usage goes to the
 * ledger as llm.usage events; failures become system.notify events and journal lines, and the
 * actor shows "degraded" until a turn succeeds. Bounded: at most `concurrency` turns at a time
 * (the rest wait in the ledger), a daily token budget, and retries only inside the provider
 * call (channels, [providers.NAME] retries). See docs/providers.md.
 *
 * Only llm actors added with llm settings (data.llm of actor.added, e.g. `--provider`) are
 * answered for by Conclave; an llm actor without them is an agent that acts by itself (MCP,
 * the REST API) and is left alone here.
 *
 * Which messages an llm actor answers: chat.messages that name it in "to", "@all" messages
 * that require a reply or mention it ("ID: …", "ID, …", "@ID"; how people address someone on
 * IRC and chat platforms); never its own, and messages from other llm actors only when they
 * require a reply (so two llm actors cannot talk to each other forever). */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

struct actor;
struct llm_actor;
struct supervisor;

/* settings: the actor's stored llm object (may be NULL). A stored value that no longer
 * validates is logged and the defaults are used. */
int llm_actor_new(struct actor *a, struct json_object *settings, struct llm_actor **ret);
void llm_actor_free(struct llm_actor *l);

/* New durable events, the group started, or the channels worker became ready: start turns. */
void llm_actor_pump(struct llm_actor *l);
/* The group or the actor stopped (or started again): cancel or resume turns. */
void llm_actor_sync(struct llm_actor *l);
/* Cancels running turns (daemon stop, actor stop, group deleted or broken); what they were
 * answering is answered again once the actor runs. */
void llm_actor_stop(struct llm_actor *l);
/* `conclave actor restart`: cancel what runs, clear "degraded", answer from the cursor on. */
void llm_actor_restart(struct llm_actor *l);

/* ready | busy | degraded | exhausted | stopped | waiting (for conclave-channels) */
const char *llm_actor_state(const struct llm_actor *l);
/* The actor's "llm" object in actor.list/status: settings, provider and model in effect,
 * turns, tokens today, last error. */
struct json_object *llm_actor_status_json(struct llm_actor *l);
/* The settings as stored (group.json). */
struct json_object *llm_actor_settings_json(const struct llm_actor *l);

/* Checks `actor add --kind llm` settings (args.llm) against the configuration. *ret: what to
 * store as data.llm. -EINVAL (bad value) or -ENOENT (no such provider, no default) with err. */
int llm_settings_for_add(struct supervisor *s, struct json_object *arg, struct json_object **ret, char *err,
                         size_t err_size);

/* Pumps every llm actor (called when a worker changed state). */
void llm_actors_pump_all(struct supervisor *s);
