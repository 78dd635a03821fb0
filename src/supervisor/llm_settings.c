/* llm actor settings: validation and their JSON form (see llm_settings.h). */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "llm_settings.h"
#include "macro.h"


/* Names as [providers.NAME] allows them. */
static bool valid_provider_name(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > 64)
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-' ||
                      *s == '_'))
                        return false;
        return true;
}

static bool has_control(const char *s, bool allow_newlines) {
        for (; *s; s++)
                if (((unsigned char) *s < 0x20 && !(allow_newlines && (*s == '\n' || *s == '\t' || *s == '\r'))) ||
                    *s == 0x7f)
                        return true;
        return false;
}

static int read_uint(struct json_object *v, const char *key, uint64_t min, uint64_t max, uint64_t *ret, char *err,
                     size_t size) {
        int64_t n;

        if (!json_object_is_type(v, json_type_int) || (n = json_object_get_int64(v)) < 0 || (uint64_t) n < min ||
            (uint64_t) n > max) {
                snprintf(err, size, "\"%s\" must be a whole number from %llu to %llu", key, (unsigned long long) min,
                         (unsigned long long) max);
                return -EINVAL;
        }
        *ret = (uint64_t) n;
        return 0;
}

int llm_settings_from_json(struct json_object *o, struct llm_settings *ret, char *err, size_t err_size) {
        struct llm_settings s = {
                .context_messages = LLM_CONTEXT_MESSAGES_DEFAULT,
                .context_chars = LLM_CONTEXT_CHARS_DEFAULT,
                .concurrency = LLM_CONCURRENCY_DEFAULT,
        };
        int r = 0;

        *ret = s;
        if (!o || json_object_is_type(o, json_type_null))
                return 0;
        if (!json_object_is_type(o, json_type_object)) {
                snprintf(err, err_size, "\"llm\" must be an object");
                return -EINVAL;
        }
        json_object_object_foreach(o, key, v) {
                uint64_t n = 0;

                if (json_object_is_type(v, json_type_null))
                        continue;
                if (streq(key, "provider") || streq(key, "model") || streq(key, "system_prompt")) {
                        const char *str = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
                        bool prompt = streq(key, "system_prompt");
                        size_t max = prompt ? LLM_SYSTEM_PROMPT_MAX : streq(key, "model") ? 256 : 64;
                        char **field = prompt ? &s.system_prompt : streq(key, "model") ? &s.model : &s.provider;

                        if (!str || !*str || strlen(str) > max || has_control(str, prompt) ||
                            (streq(key, "provider") && !valid_provider_name(str))) {
                                snprintf(err, err_size, "\"%s\" must be a string of 1-%zu %s", key, max,
                                         streq(key, "provider") ? "letters, digits, '-' or '_' (a [providers.NAME])"
                                                                : prompt ? "bytes" : "characters on one line");
                                r = -EINVAL;
                                break;
                        }
                        free(*field);
                        *field = strdup(str);
                        if (!*field) {
                                r = -ENOMEM;
                                break;
                        }
                } else if (streq(key, "context_messages")) {
                        r = read_uint(v, key, 0, LLM_CONTEXT_MESSAGES_MAX, &n, err, err_size);
                        s.context_messages = (unsigned) n;
                } else if (streq(key, "context_chars")) {
                        r = read_uint(v, key, LLM_CONTEXT_CHARS_MIN, LLM_CONTEXT_CHARS_MAX, &n, err, err_size);
                        s.context_chars = (unsigned) n;
                } else if (streq(key, "concurrency")) {
                        r = read_uint(v, key, 1, LLM_CONCURRENCY_MAX, &n, err, err_size);
                        s.concurrency = (unsigned) n;
                } else if (streq(key, "daily_tokens")) {
                        r = read_uint(v, key, 0, LLM_DAILY_TOKENS_MAX, &n, err, err_size);
                        s.daily_tokens = n;
                } else if (streq(key, "max_tokens")) {
                        r = read_uint(v, key, 0, 10000000, &n, err, err_size);
                        s.max_tokens = (unsigned) n;
                } else {
                        snprintf(err, err_size,
                                 "unknown llm setting \"%.64s\" (known: provider, model, system_prompt, context_messages, "
                                 "context_chars, concurrency, daily_tokens, max_tokens)", key);
                        r = -EINVAL;
                }
                if (r < 0)
                        break;
        }
        if (r < 0) {
                llm_settings_done(&s);
                return r;
        }
        *ret = s;
        return 0;
}

struct json_object *llm_settings_to_json(const struct llm_settings *s) {
        struct json_object *o = json_object_new_object();

        if (!o)
                return NULL;
        if (s->provider)
                json_object_object_add(o, "provider", json_object_new_string(s->provider));
        if (s->model)
                json_object_object_add(o, "model", json_object_new_string(s->model));
        if (s->system_prompt)
                json_object_object_add(o, "system_prompt", json_object_new_string(s->system_prompt));
        if (s->context_messages != LLM_CONTEXT_MESSAGES_DEFAULT)
                json_object_object_add(o, "context_messages", json_object_new_int64(s->context_messages));
        if (s->context_chars != LLM_CONTEXT_CHARS_DEFAULT)
                json_object_object_add(o, "context_chars", json_object_new_int64(s->context_chars));
        if (s->concurrency != LLM_CONCURRENCY_DEFAULT)
                json_object_object_add(o, "concurrency", json_object_new_int64(s->concurrency));
        if (s->daily_tokens)
                json_object_object_add(o, "daily_tokens", json_object_new_uint64(s->daily_tokens));
        if (s->max_tokens)
                json_object_object_add(o, "max_tokens", json_object_new_int64(s->max_tokens));
        return o;
}

void llm_settings_done(struct llm_settings *s) {
        free(s->provider);
        free(s->model);
        free(s->system_prompt);
        s->provider = s->model = s->system_prompt = NULL;
}
