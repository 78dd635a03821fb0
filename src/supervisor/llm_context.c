/* Building an llm actor's conversation (see llm_context.h). */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm_context.h"
#include "macro.h"

struct turn_text {
        bool assistant;
        char *text;
        size_t len;
};

/* "by: text" for others, the text alone for the actor's own messages. */
static size_t item_len(const char *actor_id, const struct llm_context_item *it) {
        return strlen(it->text) + (streq(it->by, actor_id) ? 0 : strlen(it->by) + 2);
}

static int append_turn(struct turn_text *turns, size_t *n, bool assistant, const char *by, const char *text) {
        struct turn_text *t = *n > 0 && turns[*n - 1].assistant == assistant ? &turns[*n - 1] : NULL;
        size_t add = strlen(text) + (assistant ? 0 : strlen(by) + 2) + (t ? 2 : 0);
        char *p;

        if (!t) {
                t = &turns[(*n)++];
                *t = (struct turn_text){ .assistant = assistant };
        }
        p = realloc(t->text, t->len + add + 1);
        if (!p)
                return -ENOMEM;
        t->text = p;
        if (t->len > 0) {
                memcpy(p + t->len, "\n\n", 2);
                t->len += 2;
        }
        if (!assistant)
                t->len += (size_t) sprintf(p + t->len, "%s: ", by);
        memcpy(p + t->len, text, strlen(text));
        t->len += strlen(text);
        p[t->len] = 0;
        return 0;
}

int llm_context_build(const char *actor_id, const struct llm_context_item *history, size_t n_history,
                      const struct llm_context_item *current, size_t max_messages, size_t max_chars,
                      struct json_object **ret, size_t *ret_used) {
        _cleanup_free_ struct turn_text *turns = NULL;
        struct json_object *list = NULL;
        size_t used = 0, chars = item_len(actor_id, current), n = 0;
        int r = 0;

        /* Newest first, while the budgets allow; a message that does not fit ends the history
         * (skipping it for an older, shorter one would show a conversation with a hole). */
        while (used < n_history && used < max_messages) {
                size_t len = item_len(actor_id, &history[used]);
                if (chars + len > max_chars)
                        break;
                chars += len;
                used++;
        }
        turns = calloc(used + 1, sizeof *turns);
        if (!turns)
                return -ENOMEM;
        for (size_t i = used; i > 0 && r >= 0; i--) {
                const struct llm_context_item *it = &history[i - 1];
                bool assistant = streq(it->by, actor_id);
                if (assistant && n == 0)
                        continue; /* the conversation must begin with the user */
                r = append_turn(turns, &n, assistant, it->by, it->text);
        }
        if (r >= 0)
                r = append_turn(turns, &n, false, current->by, current->text);
        if (r >= 0) {
                list = json_object_new_array();
                for (size_t i = 0; list && i < n; i++) {
                        struct json_object *m = json_object_new_object();
                        if (!m || json_object_array_add(list, m) < 0) {
                                json_object_put(m);
                                r = -ENOMEM;
                                break;
                        }
                        json_object_object_add(m, "role", json_object_new_string(turns[i].assistant ? "assistant" : "user"));
                        json_object_object_add(m, "content", json_object_new_string_len(turns[i].text, (int) turns[i].len));
                }
                if (!list)
                        r = -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                free(turns[i].text);
        if (r < 0) {
                json_object_put(list);
                return r;
        }
        *ret = list;
        if (ret_used)
                *ret_used = used;
        return 0;
}

char *llm_default_system_prompt(const char *actor_id, const char *actor_title, const char *group_id,
                                const char *group_title) {
        char *s;

        if (asprintf(&s,
                     "You are %s%s%s%s, a participant in the group \"%s\"%s%s%s, a conversation between humans "
                     "and agents coordinated by Conclave. Each message from someone else begins with their name "
                     "and a colon. Answer the last message directly and concisely, in plain text.",
                     actor_id, actor_title && *actor_title ? " (" : "", actor_title && *actor_title ? actor_title : "",
                     actor_title && *actor_title ? ")" : "", group_id, group_title && *group_title ? " (" : "",
                     group_title && *group_title ? group_title : "", group_title && *group_title ? ")" : "") < 0)
                return NULL;
        return s;
}
