/* The outbound HTTP engine against a real HTTP server (libmicrohttpd in a thread of this test):
 * buffered and streamed bodies, status and Retry-After, the response bound, refused and
 * never-answering peers, cancelling, calls started from callbacks, freeing with calls running. */

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "http_engine.h"
#include "macro.h"

static struct MHD_Daemon *server;
static uint16_t server_port;
static int hang_fd = -1; /* listens, never accepts: connections get no answer */
static uint16_t hang_port;
static uint16_t refused_port;

struct upload {
        char data[4096];
        size_t len;
};

static enum MHD_Result add_header(struct MHD_Response *r, const char *name, const char *value) {
        return MHD_add_response_header(r, name, value);
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
        static const char *const pieces[] = {"data: one\n\n", "data: two\n\n", "data: three\n\n"};
        unsigned *i = cls;

        if (*i >= ELEMENTSOF(pieces))
                return MHD_CONTENT_READER_END_OF_STREAM;
        usleep(20 * 1000); /* so the pieces arrive apart */
        size_t n = strlen(pieces[*i]);
        assert_true(n <= max);
        memcpy(buf, pieces[(*i)++], n);
        return (ssize_t) n;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *data,
                               size_t *data_size, void **state) {
        struct MHD_Response *resp;
        unsigned status = 200;
        enum MHD_Result ret;

        if (!*state) {
                *state = calloc(1, sizeof(struct upload));
                return *state ? MHD_YES : MHD_NO;
        }
        if (*data_size) {
                struct upload *u = *state;
                size_t n = MIN(*data_size, sizeof u->data - 1 - u->len);
                memcpy(u->data + u->len, data, n);
                u->len += n;
                *data_size = 0;
                return MHD_YES;
        }

        if (streq(url, "/ok")) {
                resp = MHD_create_response_from_buffer(5, (void *) "hello", MHD_RESPMEM_PERSISTENT);
                add_header(resp, "Content-Type", "text/plain");
        } else if (streq(url, "/echo")) {
                struct upload *u = *state;
                char out[4200];
                const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Test");
                int n = snprintf(out, sizeof out, "%s %s %.*s", method, h ? h : "-", (int) u->len,
                                 u->data);
                resp = MHD_create_response_from_buffer((size_t) n, out, MHD_RESPMEM_MUST_COPY);
        } else if (streq(url, "/429")) {
                static const char body[] = "{\"error\":\"slow down\"}";
                status = 429;
                resp = MHD_create_response_from_buffer(strlen(body), (void *) body,
                                                       MHD_RESPMEM_PERSISTENT);
                add_header(resp, "Retry-After", "7");
        } else if (streq(url, "/big")) {
                static char big[2000];
                memset(big, 'x', sizeof big);
                resp = MHD_create_response_from_buffer(sizeof big, big, MHD_RESPMEM_PERSISTENT);
        } else if (streq(url, "/stream") || streq(url, "/stream-error")) {
                unsigned *i = calloc(1, sizeof *i);
                resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64, stream_reader, i,
                                                         free);
                if (streq(url, "/stream-error"))
                        status = 500;
        } else {
                status = 404;
                resp = MHD_create_response_from_buffer(0, (void *) "", MHD_RESPMEM_PERSISTENT);
        }
        ret = MHD_queue_response(conn, status, resp);
        MHD_destroy_response(resp);
        return ret;
}

static void request_done(void *cls, struct MHD_Connection *conn, void **state,
                         enum MHD_RequestTerminationCode code) {
        free(*state);
        *state = NULL;
}

static uint16_t bound_port(int fd) {
        struct sockaddr_in sa;
        socklen_t len = sizeof sa;
        assert_int_equal(getsockname(fd, (struct sockaddr *) &sa, &len), 0);
        return ntohs(sa.sin_port);
}

static int listener(void) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        return fd;
}

static int setup(void **state) {
        const union MHD_DaemonInfo *info;
        int fd;

        server = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL,
                                  NULL, handler, NULL, MHD_OPTION_NOTIFY_COMPLETED, request_done,
                                  NULL, MHD_OPTION_END);
        assert_non_null(server);
        info = MHD_get_daemon_info(server, MHD_DAEMON_INFO_BIND_PORT);
        server_port = info->port;

        hang_fd = listener();
        assert_int_equal(listen(hang_fd, 16), 0);
        hang_port = bound_port(hang_fd);

        fd = listener(); /* bound, never listening, closed: a refused port */
        refused_port = bound_port(fd);
        close(fd);
        return 0;
}

static int teardown(void **state) {
        MHD_stop_daemon(server);
        close(hang_fd);
        return 0;
}

struct result {
        bool done;
        int error;
        long status;
        char body[4096];
        char streamed[4096];
        size_t streamed_len;
        unsigned pieces;
        char content_type[64];
        uint64_t retry_after;
        int abort_with; /* on_data returns this on the first piece when set */
};

static int on_data(struct http_call *call, const char *data, size_t len, void *userdata) {
        struct result *r = userdata;

        r->pieces++;
        if (r->abort_with)
                return r->abort_with;
        assert_true(r->streamed_len + len < sizeof r->streamed);
        memcpy(r->streamed + r->streamed_len, data, len);
        r->streamed_len += len;
        return 0;
}

static void on_done(struct http_call *call, const struct http_response *resp, void *userdata) {
        struct result *r = userdata;

        assert_false(r->done);
        r->done = true;
        r->error = resp->error;
        r->status = resp->status;
        snprintf(r->body, sizeof r->body, "%s", resp->body);
        snprintf(r->content_type, sizeof r->content_type, "%s",
                 resp->content_type ? resp->content_type : "");
        r->retry_after = resp->retry_after_usec;
        if (resp->error)
                assert_non_null(resp->error_detail);
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        fail_msg("the test's calls did not finish within 30 s");
        return 0;
}

/* Runs the loop until every result is done (or fails the test after 30 s). */
static void run_until(sd_event *ev, struct result **rs, size_t n) {
        sd_event_source *deadline;

        assert_int_equal(sd_event_add_time_relative(ev, &deadline, CLOCK_MONOTONIC,
                                                    30 * USEC_PER_SEC, 0, on_deadline, NULL),
                         0);
        for (;;) {
                bool all = true;
                for (size_t i = 0; i < n; i++)
                        all = all && rs[i]->done;
                if (all)
                        break;
                assert_true(sd_event_run(ev, UINT64_MAX) >= 0);
        }
        sd_event_source_disable_unref(deadline);
}

static char *url(char *buf, size_t size, uint16_t port, const char *path) {
        snprintf(buf, size, "http://127.0.0.1:%u%s", port, path);
        return buf;
}

static void test_buffered_and_status(void **state) {
        sd_event *ev;
        struct http_engine *e;
        struct result ok = {}, tmr = {}, nf = {}, echo = {};
        char u1[64], u2[64], u3[64], u4[64];
        const char *const headers[] = {"X-Test: yes", NULL};

        assert_int_equal(sd_event_new(&ev), 0);
        assert_int_equal(http_engine_new(ev, &e), 0);
        assert_int_equal(http_call_start(e, &(struct http_request){.url = url(u1, 64, server_port, "/ok")},
                                         NULL, on_done, &ok, NULL), 0);
        assert_int_equal(http_call_start(e, &(struct http_request){.url = url(u2, 64, server_port, "/429")},
                                         NULL, on_done, &tmr, NULL), 0);
        assert_int_equal(http_call_start(e, &(struct http_request){.url = url(u3, 64, server_port, "/nope")},
                                         NULL, on_done, &nf, NULL), 0);
        assert_int_equal(http_call_start(e, &(struct http_request){.url = url(u4, 64, server_port, "/echo"),
                                                                   .headers = headers,
                                                                   .body = "{\"a\":1}", .body_len = 7},
                                         NULL, on_done, &echo, NULL), 0);
        assert_int_equal(http_engine_active(e), 4);
        run_until(ev, (struct result *[]){&ok, &tmr, &nf, &echo}, 4);

        assert_int_equal(ok.error, 0);
        assert_int_equal(ok.status, 200);
        assert_string_equal(ok.body, "hello");
        assert_string_equal(ok.content_type, "text/plain");
        assert_int_equal(ok.retry_after, 0);

        assert_int_equal(tmr.error, 0); /* a response arrived: the status tells the rest */
        assert_int_equal(tmr.status, 429);
        assert_int_equal(tmr.retry_after, 7 * USEC_PER_SEC);
        assert_string_equal(tmr.body, "{\"error\":\"slow down\"}");

        assert_int_equal(nf.status, 404);
        assert_string_equal(echo.body, "POST yes {\"a\":1}");
        assert_int_equal(http_engine_active(e), 0);

        http_engine_free(e);
        sd_event_unref(ev);
}

static void test_methods(void **state) {
        sd_event *ev;
        struct http_engine *e;
        struct result put = {}, get = {};
        char u1[64], u2[64];

        assert_int_equal(sd_event_new(&ev), 0);
        assert_int_equal(http_engine_new(ev, &e), 0);
        assert_int_equal(http_call_start(e, &(struct http_request){.url = url(u1, 64, server_port, "/echo"),
                                                                   .method = "PUT", .body = "x", .body_len = 1},
                                         NULL, on_done, &put, NULL), 0);
        assert_int_equal(http_call_start(e, &(struct http_request){.url = url(u2, 64, server_port, "/echo")},
                                         NULL, on_done, &get, NULL), 0);
        run_until(ev, (struct result *[]){&put, &get}, 2);
        assert_string_equal(put.body, "PUT - x");
        assert_string_equal(get.body, "GET - ");
        http_engine_free(e);
        sd_event_unref(ev);
}

static void test_streaming(void **state) {
        sd_event *ev;
        struct http_engine *e;
        struct result s = {}, err = {}, aborted = {.abort_with = -EBADMSG};
        char u1[64], u2[64], u3[64];

        assert_int_equal(sd_event_new(&ev), 0);
        assert_int_equal(http_engine_new(ev, &e), 0);
        assert_int_equal(http_call_start(e, &(struct http_request){.url = url(u1, 64, server_port, "/stream")},
                                         on_data, on_done, &s, NULL), 0);
        assert_int_equal(http_call_start(e, &(struct http_request){.url = url(u2, 64, server_port, "/stream-error")},
                                         on_data, on_done, &err, NULL), 0);
        assert_int_equal(http_call_start(e, &(struct http_request){.url = url(u3, 64, server_port, "/stream")},
                                         on_data, on_done, &aborted, NULL), 0);
        run_until(ev, (struct result *[]){&s, &err, &aborted}, 3);

        assert_int_equal(s.error, 0);
        assert_int_equal(s.streamed_len, strlen("data: one\n\ndata: two\n\ndata: three\n\n"));
        assert_memory_equal(s.streamed, "data: one\n\ndata: two\n\ndata: three\n\n", s.streamed_len);
        assert_true(s.pieces >= 2);
        assert_string_equal(s.body, ""); /* on_data took it */

        /* A non-2xx body is buffered for on_done, never streamed. */
        assert_int_equal(err.status, 500);
        assert_int_equal(err.pieces, 0);
        assert_string_equal(err.body, "data: one\n\ndata: two\n\ndata: three\n\n");

        assert_int_equal(aborted.error, -EBADMSG);
        assert_int_equal(aborted.pieces, 1);
        http_engine_free(e);
        sd_event_unref(ev);
}

static void test_failures(void **state) {
        sd_event *ev;
        struct http_engine *e;
        struct result big = {}, refused = {}, hang = {}, badscheme = {};
        char u1[64], u2[64], u3[64];

        assert_int_equal(sd_event_new(&ev), 0);
        assert_int_equal(http_engine_new(ev, &e), 0);
        assert_int_equal(http_call_start(e, &(struct http_request){.url = url(u1, 64, server_port, "/big"),
                                                                   .max_response = 1000},
                                         NULL, on_done, &big, NULL), 0);
        assert_int_equal(http_call_start(e, &(struct http_request){.url = url(u2, 64, refused_port, "/")},
                                         NULL, on_done, &refused, NULL), 0);
        assert_int_equal(http_call_start(e, &(struct http_request){.url = url(u3, 64, hang_port, "/"),
                                                                   .timeout_usec = 300 * USEC_PER_MSEC},
                                         NULL, on_done, &hang, NULL), 0);
        assert_int_equal(http_call_start(e, &(struct http_request){.url = "file:///etc/passwd"},
                                         NULL, on_done, &badscheme, NULL), -EPROTONOSUPPORT);
        run_until(ev, (struct result *[]){&big, &refused, &hang}, 3);

        assert_int_equal(big.error, -EMSGSIZE);
        assert_int_equal(refused.error, -ECONNREFUSED);
        assert_int_equal(refused.status, 0);
        assert_int_equal(hang.error, -ETIMEDOUT);
        assert_false(badscheme.done);
        http_engine_free(e);
        sd_event_unref(ev);
}

/* Cancelling: a cancelled call never calls back; freeing the engine cancels the rest. */
struct chain {
        struct http_engine *engine;
        struct http_call *victim;
        struct result first, second;
        char url[64];
};

static void on_first_done(struct http_call *call, const struct http_response *resp, void *userdata) {
        struct chain *c = userdata;

        on_done(call, resp, &c->first);
        http_call_cancel(call); /* a no-op from on_done: the engine frees the call */
        http_call_cancel(c->victim);
        assert_int_equal(http_call_start(c->engine, &(struct http_request){.url = c->url}, NULL,
                                         on_done, &c->second, NULL), 0);
}

static void test_cancel_and_chain(void **state) {
        sd_event *ev;
        struct http_engine *e;
        struct chain c = {};
        struct result victim = {}, leftover = {};
        char u1[64], u2[64], u3[64];

        assert_int_equal(sd_event_new(&ev), 0);
        assert_int_equal(http_engine_new(ev, &e), 0);
        c.engine = e;
        url(c.url, sizeof c.url, server_port, "/ok");
        assert_int_equal(http_call_start(e, &(struct http_request){.url = url(u1, 64, hang_port, "/")},
                                         NULL, on_done, &victim, &c.victim), 0);
        assert_int_equal(http_call_start(e, &(struct http_request){.url = url(u2, 64, server_port, "/ok")},
                                         NULL, on_first_done, &c, NULL), 0);
        run_until(ev, (struct result *[]){&c.first, &c.second}, 2);
        assert_false(victim.done);
        assert_string_equal(c.second.body, "hello");
        assert_int_equal(http_engine_active(e), 0);

        /* Freed with a call running: no callback, nothing leaked (ASan, valgrind). */
        assert_int_equal(http_call_start(e, &(struct http_request){.url = url(u3, 64, hang_port, "/")},
                                         NULL, on_done, &leftover, NULL), 0);
        for (int i = 0; i < 5; i++)
                assert_true(sd_event_run(ev, 10 * USEC_PER_MSEC) >= 0);
        assert_int_equal(http_engine_active(e), 1);
        http_engine_free(e);
        assert_false(leftover.done);
        sd_event_unref(ev);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_buffered_and_status),
                cmocka_unit_test(test_methods),
                cmocka_unit_test(test_streaming),
                cmocka_unit_test(test_failures),
                cmocka_unit_test(test_cancel_and_chain),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
