/* The gateway's URL space (router.h). Paths are split on '/', each segment checked against the
 * shape it must have; anything else is "no such endpoint", never a guess. */

#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "router.h"

#define SEGMENTS_MAX 10

bool route_valid_id(const char *s, size_t len) {
        if (len == 0 || len > ROUTE_ID_MAX)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
                        return false;
        }
        return true;
}

/* An event is named by its ULID (26 Crockford base-32 characters) or by its seq (digits). */
static bool valid_event(const char *s, size_t len) {
        bool digits = true;

        if (len == 0 || len > ROUTE_EVENT_MAX)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (c < '0' || c > '9')
                        digits = false;
                if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
                        return false;
        }
        return digits ? len <= 19 : len == ROUTE_EVENT_MAX;
}

static bool valid_file(const char *s, size_t len) {
        if (len == 0 || len >= 64 || s[0] == '.')
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                      c == '-' || c == '.'))
                        return false;
        }
        return true;
}

struct segments {
        const char *at[SEGMENTS_MAX];
        size_t len[SEGMENTS_MAX];
        size_t n;
};

/* "/a/b/c" → a, b, c. An empty segment ("//", trailing "/") or too many: not a route. */
static bool split(const char *path, struct segments *sg) {
        const char *p = path;

        sg->n = 0;
        if (*p != '/')
                return false;
        if (p[1] == 0)
                return true;
        while (*p == '/') {
                const char *start = ++p;
                while (*p && *p != '/')
                        p++;
                if (p == start || sg->n == SEGMENTS_MAX)
                        return false;
                sg->at[sg->n] = start;
                sg->len[sg->n] = (size_t) (p - start);
                sg->n++;
        }
        return *p == 0;
}

static bool seg_is(const struct segments *sg, size_t i, const char *word) {
        return i < sg->n && sg->len[i] == strlen(word) && memcmp(sg->at[i], word, sg->len[i]) == 0;
}

static void copy_seg(char *dst, size_t size, const struct segments *sg, size_t i) {
        size_t n = sg->len[i] < size - 1 ? sg->len[i] : size - 1;
        memcpy(dst, sg->at[i], n);
        dst[n] = 0;
}

static void set(struct route_match *m, enum route r, const char *method, const char *allow) {
        m->route = r;
        m->allow = allow;
        /* HEAD is GET without a body; MHD drops the body for us. */
        m->method_ok = strstr(allow, method) != NULL && *method &&
                       (streq(method, "GET") || streq(method, "POST") || streq(method, "HEAD"));
        if (streq(method, "HEAD"))
                m->method_ok = strstr(allow, "GET") != NULL;
}

/* /api/v1/groups/{g}/… with sg->at[3] the group id. */
static void match_group(const char *method, const struct segments *sg, struct route_match *m) {
        if (!route_valid_id(sg->at[3], sg->len[3]))
                return;
        copy_seg(m->group, sizeof m->group, sg, 3);
        if (sg->n == 4)
                return set(m, ROUTE_GROUP, method, "GET");
        if (sg->n == 5 && (seg_is(sg, 4, "start") || seg_is(sg, 4, "stop") || seg_is(sg, 4, "pause") ||
                           seg_is(sg, 4, "resume"))) {
                copy_seg(m->action, sizeof m->action, sg, 4);
                return set(m, ROUTE_GROUP_ACTION, method, "POST");
        }
        if (seg_is(sg, 4, "messages")) {
                if (sg->n == 5)
                        return set(m, ROUTE_MESSAGES, method, "POST");
                if (sg->n == 7 && valid_event(sg->at[5], sg->len[5]) && seg_is(sg, 6, "reply")) {
                        copy_seg(m->event, sizeof m->event, sg, 5);
                        return set(m, ROUTE_REPLY, method, "POST");
                }
                return;
        }
        if (seg_is(sg, 4, "events")) {
                if (sg->n == 5)
                        return set(m, ROUTE_EVENTS, method, "GET");
                if (sg->n == 6 && seg_is(sg, 5, "stream"))
                        return set(m, ROUTE_EVENTS_STREAM, method, "GET");
                return;
        }
        if (!seg_is(sg, 4, "actors"))
                return;
        if (sg->n == 5)
                return set(m, ROUTE_ACTORS, method, "GET");
        if (!route_valid_id(sg->at[5], sg->len[5]))
                return;
        copy_seg(m->actor, sizeof m->actor, sg, 5);
        if (sg->n == 6)
                return set(m, ROUTE_ACTOR, method, "GET");
        if (sg->n == 7 && seg_is(sg, 6, "restart"))
                return set(m, ROUTE_ACTOR_RESTART, method, "POST");
        if (sg->n == 7 && seg_is(sg, 6, "ack"))
                return set(m, ROUTE_ACK, method, "POST");
        if (sg->n == 7 && seg_is(sg, 6, "inbox"))
                return set(m, ROUTE_INBOX, method, "GET");
        if (sg->n == 8 && seg_is(sg, 6, "inbox") && seg_is(sg, 7, "read"))
                return set(m, ROUTE_INBOX_READ, method, "POST");
}

void route_match(const char *method, const char *path, struct route_match *m) {
        struct segments sg;

        *m = (struct route_match){ .route = ROUTE_NONE, .allow = "" };
        if (!method || !path || !split(path, &sg))
                return;
        if (sg.n == 0) {
                snprintf(m->file, sizeof m->file, "index.html");
                return set(m, ROUTE_UI, method, "GET");
        }
        if (sg.n == 2 && seg_is(&sg, 0, "ui") && valid_file(sg.at[1], sg.len[1])) {
                copy_seg(m->file, sizeof m->file, &sg, 1);
                return set(m, ROUTE_UI, method, "GET");
        }
        if (sg.n == 1 && seg_is(&sg, 0, "readyz"))
                return set(m, ROUTE_READYZ, method, "GET");
        if (sg.n == 2 && seg_is(&sg, 0, "webhook") && route_valid_id(sg.at[1], sg.len[1])) {
                copy_seg(m->channel, sizeof m->channel, &sg, 1);
                return set(m, ROUTE_WEBHOOK, method, "POST");
        }
        if (sg.n < 3 || !seg_is(&sg, 0, "api") || !seg_is(&sg, 1, "v1"))
                return;
        if (sg.n == 3 && seg_is(&sg, 2, "status"))
                return set(m, ROUTE_STATUS, method, "GET");
        if (!seg_is(&sg, 2, "groups"))
                return;
        if (sg.n == 3)
                return set(m, ROUTE_GROUPS, method, "GET, POST");
        match_group(method, &sg, m);
}

const char *route_name(enum route r) {
        static const char *const names[] = {
                [ROUTE_NONE] = "none", [ROUTE_READYZ] = "readyz", [ROUTE_STATUS] = "status",
                [ROUTE_GROUPS] = "groups", [ROUTE_GROUP] = "group", [ROUTE_GROUP_ACTION] = "group-action",
                [ROUTE_ACTORS] = "actors", [ROUTE_ACTOR] = "actor", [ROUTE_ACTOR_RESTART] = "actor-restart",
                [ROUTE_INBOX] = "inbox", [ROUTE_INBOX_READ] = "inbox-read", [ROUTE_ACK] = "ack",
                [ROUTE_MESSAGES] = "messages", [ROUTE_REPLY] = "reply", [ROUTE_EVENTS] = "events",
                [ROUTE_EVENTS_STREAM] = "events-stream", [ROUTE_WEBHOOK] = "webhook", [ROUTE_UI] = "ui",
        };
        return (size_t) r < ELEMENTSOF(names) && names[r] ? names[r] : "?";
}
