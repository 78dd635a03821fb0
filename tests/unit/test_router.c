/* Unit tests for the gateway's router: every endpoint, ids validated, methods, and paths that
 * must not match. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "macro.h"
#include "router.h"

static void expect(const char *method, const char *path, enum route route, bool method_ok) {
        struct route_match m;

        route_match(method, path, &m);
        if (m.route != route || (route != ROUTE_NONE && m.method_ok != method_ok))
                fail_msg("%s %s: got route %s method_ok %d, want %s %d", method, path, route_name(m.route), m.method_ok,
                         route_name(route), method_ok);
}

static void test_endpoints(void **state) {
        (void) state;
        expect("GET", "/readyz", ROUTE_READYZ, true);
        expect("GET", "/api/v1/status", ROUTE_STATUS, true);
        expect("GET", "/api/v1/groups", ROUTE_GROUPS, true);
        expect("POST", "/api/v1/groups", ROUTE_GROUPS, true);
        expect("GET", "/api/v1/groups/g1", ROUTE_GROUP, true);
        expect("POST", "/api/v1/groups/g1/start", ROUTE_GROUP_ACTION, true);
        expect("POST", "/api/v1/groups/g1/pause", ROUTE_GROUP_ACTION, true);
        expect("GET", "/api/v1/groups/g1/actors", ROUTE_ACTORS, true);
        expect("GET", "/api/v1/groups/g1/actors/echo", ROUTE_ACTOR, true);
        expect("POST", "/api/v1/groups/g1/actors/echo/restart", ROUTE_ACTOR_RESTART, true);
        expect("GET", "/api/v1/groups/g1/actors/alice/inbox", ROUTE_INBOX, true);
        expect("POST", "/api/v1/groups/g1/actors/alice/inbox/read", ROUTE_INBOX_READ, true);
        expect("POST", "/api/v1/groups/g1/actors/alice/ack", ROUTE_ACK, true);
        expect("POST", "/api/v1/groups/g1/messages", ROUTE_MESSAGES, true);
        expect("POST", "/api/v1/groups/g1/messages/42/reply", ROUTE_REPLY, true);
        expect("POST", "/api/v1/groups/g1/messages/01M842HGY6NR40DB3NFXJMSD9H/reply", ROUTE_REPLY, true);
        expect("GET", "/api/v1/groups/g1/events", ROUTE_EVENTS, true);
        expect("GET", "/api/v1/groups/g1/events/stream", ROUTE_EVENTS_STREAM, true);
        expect("HEAD", "/api/v1/groups/g1/events", ROUTE_EVENTS, true);
        expect("POST", "/webhook/hooks", ROUTE_WEBHOOK, true);
        expect("GET", "/", ROUTE_UI, true);
        expect("GET", "/ui/app.js", ROUTE_UI, true);
}

static void test_params(void **state) {
        struct route_match m;

        (void) state;
        route_match("POST", "/api/v1/groups/team-1/messages/01M842HGY6NR40DB3NFXJMSD9H/reply", &m);
        assert_string_equal(m.group, "team-1");
        assert_string_equal(m.event, "01M842HGY6NR40DB3NFXJMSD9H");
        route_match("GET", "/api/v1/groups/g_2/actors/bob/inbox", &m);
        assert_string_equal(m.group, "g_2");
        assert_string_equal(m.actor, "bob");
        route_match("POST", "/api/v1/groups/g/resume", &m);
        assert_string_equal(m.action, "resume");
        route_match("POST", "/webhook/ci-hook", &m);
        assert_string_equal(m.channel, "ci-hook");
        route_match("GET", "/", &m);
        assert_string_equal(m.file, "index.html");
}

static void test_wrong_method(void **state) {
        (void) state;
        expect("POST", "/api/v1/groups/g1", ROUTE_GROUP, false);
        expect("GET", "/api/v1/groups/g1/messages", ROUTE_MESSAGES, false);
        expect("DELETE", "/api/v1/groups", ROUTE_GROUPS, false);
        expect("PO", "/api/v1/groups", ROUTE_GROUPS, false);
        expect("GET", "/webhook/x", ROUTE_WEBHOOK, false);
        expect("", "/api/v1/groups", ROUTE_GROUPS, false);
}

static void test_no_route(void **state) {
        char long_id[100];

        (void) state;
        memset(long_id, 'a', sizeof long_id);
        long_id[sizeof long_id - 1] = 0;
        static const char *const paths[] = {
                "", "api", "/api", "/api/v1", "/api/v2/groups", "/api/v1/groups/", "/api/v1//groups",
                "/api/v1/groups/g1/", "/api/v1/groups/g.1", "/api/v1/groups/g 1", "/api/v1/groups/../etc",
                "/api/v1/groups/g1/explode", "/api/v1/groups/g1/messages/12ab/reply",
                "/api/v1/groups/g1/messages/01M842HGY6NR40DB3NFXJMSD9/reply", "/api/v1/groups/g1/actors/a/b",
                "/ui/../secret", "/ui/.hidden", "/ui/a/b", "/webhook/", "/webhook/a/b", "/readyz/x",
                "/api/v1/groups/g1/events/stream/x", "/a/b/c/d/e/f/g/h/i/j/k/l",
        };
        for (size_t i = 0; i < ELEMENTSOF(paths); i++)
                expect("GET", paths[i], ROUTE_NONE, false);
        {
                char path[200];
                snprintf(path, sizeof path, "/api/v1/groups/%s", long_id);
                expect("GET", path, ROUTE_NONE, false);
        }
        expect(NULL, "/readyz", ROUTE_NONE, false);
        expect("GET", NULL, ROUTE_NONE, false);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_endpoints),
                cmocka_unit_test(test_params),
                cmocka_unit_test(test_wrong_method),
                cmocka_unit_test(test_no_route),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
