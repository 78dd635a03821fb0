/* Fuzz target: the whole gateway as a client reaches it. The input is written, as is, to a TCP
 * connection to a real listener (http.c, libmicrohttpd, connections.c, api.c, the router,
 * webhooks, the event stream) run on its own sd-event loop, standalone: no supervisor, so what
 * would go upstream is answered 503. Open on loopback (no token), no rate limit, a 4 KiB body
 * limit and one webhook channel, so every route and limit is reachable. */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api.h"
#include "config.h"
#include "fileio.h"
#include "fuzz.h"
#include "http.h"
#include "log.h"
#include "macro.h"
#include "worker.h"

/* Loop iterations one input may take: enough for any answer, bounded for a stuck one. */
#define ITERATIONS_MAX 2000
/* Loop runs in a row in which nothing happened (1 ms each) after the input was sent. */
#define IDLE_MAX 3

static sd_event *event;
static struct http_server *server;
static struct gateway_api *api;
static struct worker worker; /* standalone: no link to a supervisor */
static struct sockaddr_in address;
static char home[] = "/tmp/conclave-fuzz-http.XXXXXX";

static void cleanup(void) {
        char path[sizeof home + 32];

        server = http_server_free(server);
        api = gateway_api_free(api);
        event = sd_event_unref(event);
        snprintf(path, sizeof path, "%s/hook.secret", home);
        (void) unlink(path);
        (void) rmdir(home);
}

static int setup(void) {
        _cleanup_(config_freep) struct config *c = NULL;
        _cleanup_free_ char *text = NULL;
        char path[sizeof home + 32], status[128];
        unsigned port;
        int r;

        log_setup("fuzz-http", LOG_TARGET_STDERR);
        log_set_max_level(LOG_CRIT);
        if (!mkdtemp(home))
                return -errno;
        atexit(cleanup);
        snprintf(path, sizeof path, "%s/hook.secret", home);
        r = write_file_atomic(path, "fuzz-secret-0123456789\n", 23, 0600);
        if (r < 0)
                return r;
        if (asprintf(&text,
                     "[gateway]\nport = 1\nopen = true\nrate_limit = 0\nmax_body = \"4K\"\nmax_connections = 64\n"
                     "[channels.hooks]\nkind = \"webhook\"\ngroup = \"g1\"\nsecret_file = \"%s\"\nallowed_users = [\"*\"]\n",
                     path) < 0)
                return -ENOMEM;
        r = config_parse_text("fuzz.toml", text, &c);
        if (r < 0 || c->n_errors > 0)
                return r < 0 ? r : -EINVAL;
        c->gateway_port = 0; /* any free port */
        r = sd_event_new(&event);
        if (r < 0)
                return r;
        worker.event = event;
        r = http_server_new(event, &server);
        if (r >= 0)
                r = gateway_api_new(event, &worker, &api);
        if (r < 0)
                return r;
        http_server_set_api(server, api);
        r = http_server_apply_config(server, c);
        if (r >= 0)
                r = gateway_api_apply_config(api, c, http_server_loopback_only(server));
        if (r < 0)
                return r;
        /* "listening on 127.0.0.1:PORT" */
        http_server_status(server, status, sizeof status);
        if (sscanf(status, "listening on 127.0.0.1:%u", &port) != 1)
                return -EADDRNOTAVAIL;
        address = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t) port) };
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        size_t sent = 0;
        bool shut = false;
        char buf[16384];
        int fd;

        if (!server && setup() < 0) {
                fprintf(stderr, "fuzz_http: cannot set up the gateway\n");
                abort();
        }
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                abort();
        if (connect(fd, (struct sockaddr *) &address, sizeof address) < 0 && errno != EINPROGRESS)
                abort();
        for (int i = 0, idle = 0; i < ITERATIONS_MAX && idle < IDLE_MAX; i++) {
                ssize_t n;
                int r;

                if (!shut) {
                        n = size > sent ? send(fd, data + sent, size - sent, MSG_NOSIGNAL) : 0;
                        if (n > 0)
                                sent += (size_t) n;
                        else if (n < 0 && errno != EAGAIN && errno != EINPROGRESS && errno != ENOTCONN)
                                break; /* the gateway closed the connection: it answered or refused */
                        if (sent == size) {
                                (void) shutdown(fd, SHUT_WR);
                                shut = true;
                        }
                }
                r = sd_event_run(event, 1000);
                n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
                if (n == 0 || (n < 0 && errno != EAGAIN))
                        break;
                /* libmicrohttpd may not notice a half-close that came with the data: once all is
                 * sent and nothing moves, the gateway is waiting for more; that is the end. */
                idle = shut && r <= 0 && n < 0 ? idle + 1 : 0;
        }
        close(fd);
        /* Let libmicrohttpd see the close and free the connection before the next input. */
        for (int i = 0; i < 20; i++)
                (void) sd_event_run(event, 0);
        return 0;
}
