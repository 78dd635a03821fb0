/* Fuzz target: the request router and the Authorization header check. Input: a method, '\n',
 * a path, optionally '\n' and an Authorization header value. */

#include <string.h>

#include "auth.h"
#include "fuzz.h"
#include "macro.h"
#include "router.h"

/* Up to the first '\n' from *p (at most end), as a NUL-terminated copy in buf. */
static void take_line(const uint8_t **p, const uint8_t *end, char *buf, size_t size) {
        size_t n = 0;

        while (*p < end && **p != '\n') {
                if (n + 1 < size)
                        buf[n++] = (char) **p;
                (*p)++;
        }
        if (*p < end)
                (*p)++;
        buf[n] = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const struct gateway_auth auth = { .source = GATEWAY_TOKEN_CONFIG };
        const uint8_t *p = data, *end = data + size;
        char method[32], path[4096], header[2048];
        struct route_match m;

        take_line(&p, end, method, sizeof method);
        take_line(&p, end, path, sizeof path);
        take_line(&p, end, header, sizeof header);

        route_match(method, path, &m);
        /* What a match promises its users: ids that are valid, strings that end. */
        if (m.route != ROUTE_NONE) {
                if (strlen(m.allow) == 0 || strlen(m.group) > ROUTE_ID_MAX || strlen(m.actor) > ROUTE_ID_MAX ||
                    strlen(m.channel) > ROUTE_ID_MAX || strlen(m.event) > ROUTE_EVENT_MAX)
                        __builtin_trap();
                if (*m.group && !route_valid_id(m.group, strlen(m.group)))
                        __builtin_trap();
                if (*m.channel && !route_valid_id(m.channel, strlen(m.channel)))
                        __builtin_trap();
        }
        (void) route_name(m.route);
        (void) auth_check(&auth, header);
        (void) auth_check(&auth, NULL);
        return 0;
}
