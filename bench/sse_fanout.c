/* bench/sse_fanout: N event-stream clients on one group of a running gateway, then M messages
 * sent one at a time; prints the gateway's RSS before, with the clients connected and after the
 * messages, and the latency of each delivery (client, message) as p50/p99/max: end to end, from
 * sending the message's POST (so including its durable write) to the client reading its event,
 * and the fan-out spread, from the first client reading it to this one. Figures only.
 *
 *   bench/sse_fanout PORT TOKEN_FILE GROUP [CLIENTS [MESSAGES [INTERVAL_MS]]]
 *
 * (run by bench/gateway). Single-threaded: one epoll loop reads every stream. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CLIENT_BUF 65536

struct client {
        int fd;
        bool open;  /* got the 200 and the opening comment */
        size_t len;
        char buf[CLIENT_BUF];
};

static struct sockaddr_in address;
static char token[1100];

static double now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

struct rss {
        long total, anon, file; /* kB: VmRSS, RssAnon (private), RssFile (mostly shared libraries) */
};

static struct rss rss_of(int pid) {
        struct rss r = { -1, -1, -1 };
        char path[64], line[256];
        FILE *f;

        snprintf(path, sizeof path, "/proc/%d/status", pid);
        f = fopen(path, "re");
        if (!f)
                return r;
        while (fgets(line, sizeof line, f)) {
                (void) sscanf(line, "VmRSS: %ld kB", &r.total);
                (void) sscanf(line, "RssAnon: %ld kB", &r.anon);
                (void) sscanf(line, "RssFile: %ld kB", &r.file);
        }
        fclose(f);
        return r;
}

static void print_rss(const char *when, struct rss r) {
        printf("SSE: gateway RSS %s: %.1f MB (%.1f MB private, %.1f MB file-backed: libraries)\n", when,
               r.total / 1024.0, r.anon / 1024.0, r.file / 1024.0);
}

static int connect_to(bool nonblocking) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0), one = 1;

        if (fd < 0)
                return -1;
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, (struct sockaddr *) &address, sizeof address) < 0 && errno != EINPROGRESS) {
                close(fd);
                return -1;
        }
        return fd;
}

/* One blocking request on a fresh connection; the answer's body into out. Returns the status. */
static int http(const char *method, const char *path, const char *body, char *out, size_t size) {
        char req[2048];
        size_t got = 0;
        int fd = connect_to(false), n, status = -1;

        if (fd < 0)
                return -1;
        n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer %s\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     method, path, token, body ? strlen(body) : 0, body ? body : "");
        if (write(fd, req, (size_t) n) != n) {
                close(fd);
                return -1;
        }
        while (got + 1 < size) {
                ssize_t r = read(fd, out + got, size - 1 - got);
                if (r <= 0)
                        break;
                got += (size_t) r;
        }
        out[got] = 0;
        close(fd);
        (void) sscanf(out, "HTTP/1.1 %d", &status);
        return status;
}

static double *first_at, *spread; /* per message: first delivery; per delivery: after the first */

/* Reads what a client has; for each complete event with "bench-K" in it records the latency. */
static void client_read(struct client *c, const double *sent_at, int n_messages, double *lat, size_t *n_lat) {
        for (;;) {
                ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
                char *line, *end;

                if (r <= 0)
                        return;
                c->len += (size_t) r;
                c->buf[c->len] = 0;
                if (!c->open && strstr(c->buf, "\r\n\r\n")) {
                        if (strncmp(c->buf, "HTTP/1.1 200", 12) != 0) {
                                fprintf(stderr, "stream refused: %.80s\n", c->buf);
                                exit(1);
                        }
                        c->open = true;
                }
                /* Consume whole lines; keep a partial one. */
                line = c->buf;
                while ((end = strchr(line, '\n'))) {
                        const char *k;
                        *end = 0;
                        if (strncmp(line, "data: ", 6) == 0 && (k = strstr(line, "\"text\":\"bench-"))) {
                                int i = atoi(k + 14); /* after "text":"bench- */
                                if (i >= 0 && i < n_messages && sent_at[i] > 0) {
                                        double t = now_ms();
                                        if (first_at[i] == 0)
                                                first_at[i] = t;
                                        spread[*n_lat] = t - first_at[i];
                                        lat[(*n_lat)++] = t - sent_at[i];
                                }
                        }
                        line = end + 1;
                }
                c->len = strlen(line);
                memmove(c->buf, line, c->len + 1);
        }
}

int main(int argc, char *argv[]) {
        int port, n_clients, n_messages, interval_ms, gw_pid = -1, ep, connected = 0;
        struct client *clients;
        double *sent_at, *lat, t_connect;
        size_t n_lat = 0;
        char out[8192], path[256], body[256];
        struct rss rss_before, rss_connected, rss_after;
        struct rlimit rl;
        FILE *f;

        if (argc < 4) {
                fprintf(stderr, "usage: %s PORT TOKEN_FILE GROUP [CLIENTS [MESSAGES [INTERVAL_MS]]]\n", argv[0]);
                return 2;
        }
        port = atoi(argv[1]);
        n_clients = argc > 4 ? atoi(argv[4]) : 1000;
        n_messages = argc > 5 ? atoi(argv[5]) : 100;
        interval_ms = argc > 6 ? atoi(argv[6]) : 20;
        f = fopen(argv[2], "re");
        if (!f || !fgets(token, sizeof token, f)) {
                perror(argv[2]);
                return 1;
        }
        fclose(f);
        token[strcspn(token, "\r\n")] = 0;
        address = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t) port) };
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t) n_clients + 64) {
                rl.rlim_cur = rl.rlim_max < (rlim_t) n_clients + 64 ? rl.rlim_max : (rlim_t) n_clients + 64;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }

        if (http("GET", "/healthz", NULL, out, sizeof out) == 200 && strstr(out, "\"pid\":"))
                gw_pid = atoi(strstr(out, "\"pid\":") + 6);
        rss_before = rss_of(gw_pid);

        clients = calloc((size_t) n_clients, sizeof *clients);
        sent_at = calloc((size_t) n_messages, sizeof *sent_at);
        lat = calloc((size_t) n_clients * (size_t) n_messages, sizeof *lat);
        spread = calloc((size_t) n_clients * (size_t) n_messages, sizeof *spread);
        first_at = calloc((size_t) n_messages, sizeof *first_at);
        if (!spread || !first_at)
                return 1;
        ep = epoll_create1(EPOLL_CLOEXEC);
        if (!clients || !sent_at || !lat || ep < 0)
                return 1;
        t_connect = now_ms();
        for (int i = 0; i < n_clients; i++) {
                char req[1400];
                struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &clients[i] };
                int n;

                clients[i].fd = connect_to(false);
                if (clients[i].fd < 0) {
                        fprintf(stderr, "connection %d: %s\n", i, strerror(errno));
                        return 1;
                }
                n = snprintf(req, sizeof req,
                             "GET /api/v1/groups/%s/events/stream HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer %s\r\n"
                             "Accept: text/event-stream\r\n\r\n",
                             argv[3], token);
                if (write(clients[i].fd, req, (size_t) n) != n)
                        return 1;
                (void) fcntl(clients[i].fd, F_SETFL, O_NONBLOCK);
                (void) epoll_ctl(ep, EPOLL_CTL_ADD, clients[i].fd, &ev);
        }
        /* Wait until every stream is open. */
        while (connected < n_clients && now_ms() - t_connect < 60000) {
                struct epoll_event evs[256];
                int n = epoll_wait(ep, evs, 256, 100);
                connected = 0;
                for (int i = 0; i < n; i++)
                        client_read(evs[i].data.ptr, sent_at, n_messages, lat, &n_lat);
                for (int i = 0; i < n_clients; i++)
                        connected += clients[i].open;
        }
        printf("SSE: %d/%d streams open in %.0f ms\n", connected, n_clients, now_ms() - t_connect);
        usleep(500 * 1000);
        rss_connected = rss_of(gw_pid);

        snprintf(path, sizeof path, "/api/v1/groups/%s/messages", argv[3]);
        for (int m = 0; m < n_messages; m++) {
                double until;
                snprintf(body, sizeof body, "{\"text\":\"bench-%d\"}", m);
                sent_at[m] = now_ms();
                if (http("POST", path, body, out, sizeof out) != 201) {
                        fprintf(stderr, "send %d: %.200s\n", m, out);
                        return 1;
                }
                until = now_ms() + interval_ms;
                do {
                        struct epoll_event evs[256];
                        int n = epoll_wait(ep, evs, 256, 1);
                        for (int i = 0; i < n; i++)
                                client_read(evs[i].data.ptr, sent_at, n_messages, lat, &n_lat);
                } while (now_ms() < until);
        }
        /* The last events' stragglers. */
        for (double until = now_ms() + 2000; now_ms() < until && n_lat < (size_t) n_clients * n_messages;) {
                struct epoll_event evs[256];
                int n = epoll_wait(ep, evs, 256, 10);
                for (int i = 0; i < n; i++)
                        client_read(evs[i].data.ptr, sent_at, n_messages, lat, &n_lat);
        }
        rss_after = rss_of(gw_pid);

        qsort(lat, n_lat, sizeof *lat, cmp_double);
        qsort(spread, n_lat, sizeof *spread, cmp_double);
        print_rss("before", rss_before);
        print_rss("with the streams open", rss_connected);
        print_rss("after the messages", rss_after);
        printf("SSE: %zu of %zu deliveries; send to delivery p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", n_lat,
               (size_t) n_clients * n_messages, n_lat ? lat[n_lat / 2] : 0, n_lat ? lat[n_lat * 99 / 100] : 0,
               n_lat ? lat[n_lat - 1] : 0);
        printf("SSE: fan-out spread (first client to each other) p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
               n_lat ? spread[n_lat / 2] : 0, n_lat ? spread[n_lat * 99 / 100] : 0, n_lat ? spread[n_lat - 1] : 0);
        for (int i = 0; i < n_clients; i++)
                close(clients[i].fd);
        free(clients);
        free(sent_at);
        free(lat);
        free(spread);
        free(first_at);
        close(ep);
        return 0;
}
