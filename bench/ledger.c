/* bench/ledger: figures for the collaboration core, measured through the daemon's control socket.
 *  1. Durable appends/s (message.send, closed loop: every connection keeps exactly one request
 *     outstanding) for each [runtime] ledger_sync policy with 1, 8 and 64 concurrent writers, and
 *     the client-side latency of each request (p50/p99).
 *  2. A 1,000,000-event group against a 1,000-event group built the same way (group and actors
 *     through the daemon, the bulk appended with the library while it is stopped): start-up
 *     (exec -> READY=1, catching up the derived state), events.tail n=100, inbox.list for an actor
 *     50 events behind, one that never read (everything addressed to it) and one that never read
 *     with nothing addressed to it (the whole ledger is scanned), actor.show (unread count).
 *  3. The supervisor's memory (VmRSS, Pss) idle after start-up and after those queries.
 * Prints figures; asserts nothing. Usage: CONCLAVE_LIBEXECDIR=DIR bench/ledger [TMPDIR]
 * (run via `make bench`; ~300 MB of scratch data in a mkdtemp directory, removed at the end). */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "control.h"
#include "ledger.h"

#define WARMUP_S 0.5
#define MEASURE_S 3.0
#define QUERY_RUNS 200
#define SCAN_RUNS 3 /* inbox.list that reads the whole ledger: seconds each on 1M events */
#define SHOW_RUNS 5
#define BIG_EVENTS 1000000u
#define SMALL_EVENTS 1000u
#define BOB_UNREAD 50u
#define WRITERS_MAX 64 /* the daemon's CONTROL_CONNECTIONS_MAX */
#define READY_TIMEOUT_S 300.0
#define GROUP "b"
#define TEXT "The build on main is green again; I'll pick up the ledger benchmark next, ping me if you need review."

static char base_dir[256];
static char supervisor_path[512];
static pid_t running_pid;

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...) {
        int saved = errno;
        va_list ap;

        fputs("bench/ledger: ", stderr);
        errno = saved; /* for %m */
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        exit(EXIT_FAILURE);
}

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void sleep_s(double s) {
        struct timespec ts = { .tv_sec = (time_t) s, .tv_nsec = (long) ((s - (double) (time_t) s) * 1e9) };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

struct stats {
        double p50, p99, max;
};

static struct stats stats_of(double *v, size_t n) {
        struct stats s = { -1, -1, -1 };
        size_t i99;

        if (n == 0)
                return s;
        qsort(v, n, sizeof *v, cmp_double);
        i99 = (n * 99) / 100;
        s.p50 = v[n / 2];
        s.p99 = v[i99 < n ? i99 : n - 1];
        s.max = v[n - 1];
        return s;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        (void) (type == FTW_DP || type == FTW_D ? rmdir(path) : unlink(path));
        return 0;
}

static void rm_tree(const char *path) {
        (void) nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void cleanup(void) {
        if (running_pid > 0) {
                kill(running_pid, SIGKILL);
                waitpid(running_pid, NULL, 0);
                running_pid = 0;
        }
        if (*base_dir) {
                rm_tree(base_dir);
                *base_dir = 0;
        }
}

/* --- the daemon ------------------------------------------------------------------------------ */

struct daemon {
        char home[320], sock[384], notify[384], config[384];
        pid_t pid;
};

static void daemon_init(struct daemon *d, const char *name, const char *sync_policy) {
        struct sockaddr_un sa;
        char run[352];
        FILE *f;

        memset(d, 0, sizeof *d);
        snprintf(d->home, sizeof d->home, "%s/%s", base_dir, name);
        snprintf(run, sizeof run, "%s/run", d->home);
        snprintf(d->sock, sizeof d->sock, "%s/control.sock", run);
        snprintf(d->notify, sizeof d->notify, "%s/systemd-notify.sock", d->home);
        snprintf(d->config, sizeof d->config, "%s/config.toml", d->home);
        if (mkdir(d->home, 0700) < 0 || mkdir(run, 0700) < 0)
                die("mkdir %s: %m", d->home);
        if (strlen(d->sock) >= sizeof sa.sun_path || strlen(d->notify) >= sizeof sa.sun_path)
                die("%s: path too long for a socket (use a shorter TMPDIR)", d->notify);
        f = fopen(d->config, "we");
        if (!f)
                die("%s: %m", d->config);
        fprintf(f, "[runtime]\nledger_sync = \"%s\"\nlog_level = \"warning\"\n\n[gateway]\nport = %d\n", sync_policy,
                30000 + rand() % 20000);
        fclose(f);
}

/* Starts conclave-supervisor on d's home; returns the time from exec to its READY=1 (ms). */
static double daemon_start(struct daemon *d) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct timeval tv = { .tv_sec = 1 };
        char buf[4096], run[352];
        double start;
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        snprintf(sa.sun_path, sizeof sa.sun_path, "%.107s", d->notify); /* length checked */
        (void) unlink(d->notify);
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                die("notify socket %s: %m", d->notify);
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        snprintf(run, sizeof run, "%s/run", d->home);
        setenv("CONCLAVE_HOME", d->home, 1);
        setenv("CONCLAVE_RUNTIME_DIR", run, 1);
        setenv("CONCLAVE_CONFIG", d->config, 1);
        setenv("CONCLAVE_LOG_TARGET", "stderr", 1);
        setenv("CONCLAVE_LOG_LEVEL", "warning", 1);
        setenv("NOTIFY_SOCKET", d->notify, 1);

        start = now_s();
        d->pid = fork();
        if (d->pid < 0)
                die("fork: %m");
        if (d->pid == 0) {
                execl(supervisor_path, "conclave-supervisor", (char *) NULL);
                _exit(127);
        }
        running_pid = d->pid;
        for (;;) {
                ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
                int status;

                if (n >= 0) {
                        buf[n] = 0;
                        if (strstr(buf, "READY=1"))
                                break;
                        continue;
                }
                if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
                        running_pid = 0;
                        die("conclave-supervisor (%s) exited before READY=1 (status 0x%x)", d->home, status);
                }
                if (now_s() - start > READY_TIMEOUT_S)
                        die("conclave-supervisor (%s): no READY=1 within %.0f s", d->home, READY_TIMEOUT_S);
        }
        close(fd);
        (void) unlink(d->notify);
        return (now_s() - start) * 1e3;
}

static void daemon_stop(struct daemon *d) {
        double start = now_s();
        int status;

        if (d->pid <= 0)
                return;
        kill(d->pid, SIGTERM);
        while (waitpid(d->pid, &status, WNOHANG) != d->pid) {
                if (now_s() - start > 30) {
                        fprintf(stderr, "bench/ledger: supervisor %d ignored SIGTERM for 30 s; killing it\n", (int) d->pid);
                        kill(d->pid, SIGKILL);
                        waitpid(d->pid, &status, 0);
                        break;
                }
                sleep_s(0.005);
        }
        d->pid = running_pid = 0;
}

/* utime + stime of pid, in clock ticks. */
static unsigned long cpu_ticks(pid_t pid) {
        char path[64], buf[1024], *p;
        unsigned long ut = 0, st = 0;
        FILE *f;
        size_t n;

        snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return 0;
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        p = strrchr(buf, ')');
        if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
                return 0;
        return ut + st;
}

/* Waits until pid used no CPU for 0.5 s; returns how long it kept busy (s), e.g. verifying its
 * ledgers in the background after READY=1. */
static double wait_quiescent(pid_t pid) {
        double start = now_s(), last_busy = start;
        unsigned long prev = cpu_ticks(pid), cur;

        for (;;) {
                sleep_s(0.1);
                cur = cpu_ticks(pid);
                if (cur != prev)
                        last_busy = now_s();
                prev = cur;
                if (now_s() - last_busy >= 0.5 || now_s() - start > 120)
                        return last_busy - start;
        }
}

struct mem {
        long rss_kb, pss_kb; /* -1: not available */
};

static struct mem memory_of(pid_t pid) {
        struct mem m = { -1, -1 };
        char path[64], line[256];
        FILE *f;

        snprintf(path, sizeof path, "/proc/%d/status", (int) pid);
        if ((f = fopen(path, "re"))) {
                while (fgets(line, sizeof line, f))
                        if (sscanf(line, "VmRSS: %ld kB", &m.rss_kb) == 1)
                                break;
                fclose(f);
        }
        snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int) pid);
        if ((f = fopen(path, "re"))) {
                while (fgets(line, sizeof line, f))
                        if (sscanf(line, "Pss: %ld kB", &m.pss_kb) == 1)
                                break;
                fclose(f);
        }
        return m;
}

/* --- control socket client ------------------------------------------------------------------ */

struct client {
        int fd;
        char *buf;
        size_t len, cap;
};

/* Sends one request line (with its '\n') and returns the reply line (NUL-terminated, valid until
 * the next call), or NULL if the daemon closed the connection (e.g. refused it: too many). */
static char *client_call_raw(struct client *c, const char *line, size_t len) {
        char *nl;

        if (send(c->fd, line, len, MSG_NOSIGNAL) != (ssize_t) len)
                return NULL;
        c->len = 0;
        while (!(nl = c->len ? memchr(c->buf, '\n', c->len) : NULL)) {
                ssize_t n;
                if (c->cap - c->len < 65536) {
                        char *b = realloc(c->buf, c->cap + 262144);
                        if (!b)
                                die("out of memory");
                        c->buf = b;
                        c->cap += 262144;
                }
                n = read(c->fd, c->buf + c->len, c->cap - c->len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return NULL;
                c->len += (size_t) n;
        }
        *nl = 0;
        return c->buf;
}

static bool client_open(struct client *c, const char *sock) {
        static const char ping[] = "{\"op\":\"ping\"}\n";
        char *reply;

        memset(c, 0, sizeof *c);
        c->fd = control_connect(sock);
        if (c->fd < 0)
                die("connect %s: %s", sock, strerror(-c->fd));
        reply = client_call_raw(c, ping, sizeof ping - 1);
        if (reply && strncmp(reply, "{\"ok\":true", 10) == 0)
                return true;
        close(c->fd);
        free(c->buf);
        c->fd = -1;
        c->buf = NULL;
        return false;
}

/* Connects, retrying while the daemon still counts connections we already closed. */
static void client_open_retry(struct client *c, const char *sock) {
        for (int i = 0; i < 200; i++) {
                if (client_open(c, sock))
                        return;
                sleep_s(0.01);
        }
        die("the daemon keeps refusing control connections on %s", sock);
}

static void client_close(struct client *c) {
        if (c->fd >= 0)
                close(c->fd);
        free(c->buf);
        c->fd = -1;
        c->buf = NULL;
}

/* Calls op with args (JSON text); returns the parsed reply's result (new reference), or dies. */
static struct json_object *client_call(struct client *c, const char *op, const char *args) {
        struct json_object *reply, *ok, *result = NULL;
        char *line, *text;
        int n = asprintf(&line, "{\"op\":\"%s\",\"args\":%s}\n", op, args);

        if (n < 0)
                die("out of memory");
        text = client_call_raw(c, line, (size_t) n);
        if (!text)
                die("%s: the daemon closed the control connection", op);
        reply = json_tokener_parse(text);
        if (!reply || !json_object_object_get_ex(reply, "ok", &ok) || !json_object_get_boolean(ok))
                die("%s %s: %s", op, args, text);
        if (json_object_object_get_ex(reply, "result", &result))
                json_object_get(result);
        json_object_put(reply);
        free(line);
        return result;
}

/* --- 1. durable appends through the control socket ------------------------------------------ */

struct writer {
        int fd;
        double sent;
        size_t len;
        char buf[4096];
};

struct append_result {
        double rate, daemon_cpu, client_cpu; /* CPU: % of one core during the measurement */
        struct stats lat_us;
        unsigned long errors;
        char first_error[160];
};

static void send_request(struct writer *w, const char *req, size_t len) {
        w->sent = now_s();
        if (send(w->fd, req, len, MSG_NOSIGNAL) != (ssize_t) len)
                die("message.send: cannot write the request: %m");
}

static double process_cpu_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static struct append_result drive_writers(const char *sock, int n, pid_t daemon_pid) {
        static const char req[] = "{\"op\":\"message.send\",\"args\":{\"group\":\"" GROUP "\",\"text\":\"" TEXT "\"}}\n";
        struct append_result res = { 0 };
        struct writer *w = calloc((size_t) n, sizeof *w);
        size_t n_lat = 0, cap_lat = 65536, acks = 0;
        double *lat = malloc(cap_lat * sizeof *lat), t0, warm_end, end, cpu0 = 0, cpu1 = 0;
        unsigned long ticks0 = 0, ticks1 = 0;
        int ep = epoll_create1(EPOLL_CLOEXEC), outstanding = 0, sampled = 0;

        if (!w || !lat || ep < 0)
                die("out of memory");
        for (int i = 0; i < n; i++) {
                struct client c;
                struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t) i };

                client_open_retry(&c, sock);
                free(c.buf); /* the ping's reply was the whole line: nothing left over */
                w[i].fd = c.fd;
                if (epoll_ctl(ep, EPOLL_CTL_ADD, w[i].fd, &ev) < 0)
                        die("epoll_ctl: %m");
        }

        t0 = now_s();
        warm_end = t0 + WARMUP_S;
        end = warm_end + MEASURE_S;
        for (int i = 0; i < n; i++) {
                send_request(&w[i], req, sizeof req - 1);
                outstanding++;
        }
        while (outstanding > 0) {
                struct epoll_event evs[WRITERS_MAX];
                int k = epoll_wait(ep, evs, WRITERS_MAX, 100);

                if (k < 0 && errno != EINTR)
                        die("epoll_wait: %m");
                if (now_s() > end + 30)
                        die("%d message.send requests unanswered 30 s after the end", outstanding);
                if (sampled == 0 && now_s() >= warm_end) {
                        ticks0 = cpu_ticks(daemon_pid);
                        cpu0 = process_cpu_s();
                        sampled = 1;
                } else if (sampled == 1 && now_s() >= end) {
                        ticks1 = cpu_ticks(daemon_pid);
                        cpu1 = process_cpu_s();
                        sampled = 2;
                }
                for (int e = 0; e < k; e++) {
                        struct writer *x = &w[evs[e].data.u32];
                        ssize_t got = read(x->fd, x->buf + x->len, sizeof x->buf - x->len - 1);
                        double t = now_s();
                        char *line = x->buf, *nl;

                        if (got <= 0)
                                die("control connection closed during message.send");
                        x->len += (size_t) got;
                        while ((nl = memchr(line, '\n', x->len - (size_t) (line - x->buf)))) {
                                *nl = 0;
                                if (strncmp(line, "{\"ok\":true", 10) != 0) {
                                        if (res.errors++ == 0)
                                                snprintf(res.first_error, sizeof res.first_error, "%.159s", line);
                                } else if (t >= warm_end && t <= end) {
                                        acks++;
                                        if (n_lat == cap_lat) {
                                                double *l2 = realloc(lat, 2 * cap_lat * sizeof *lat);
                                                if (!l2)
                                                        die("out of memory");
                                                lat = l2;
                                                cap_lat *= 2;
                                        }
                                        lat[n_lat++] = (t - x->sent) * 1e6;
                                }
                                if (t < end)
                                        send_request(x, req, sizeof req - 1);
                                else
                                        outstanding--;
                                line = nl + 1;
                        }
                        x->len -= (size_t) (line - x->buf);
                        memmove(x->buf, line, x->len);
                }
        }
        res.rate = (double) acks / MEASURE_S;
        res.daemon_cpu = (double) (ticks1 - ticks0) / (double) sysconf(_SC_CLK_TCK) / MEASURE_S * 100.0;
        res.client_cpu = (cpu1 - cpu0) / MEASURE_S * 100.0;
        res.lat_us = stats_of(lat, n_lat);
        for (int i = 0; i < n; i++)
                close(w[i].fd);
        close(ep);
        free(w);
        free(lat);
        return res;
}

static void bench_appends(void) {
        static const char *const policies[] = { "always", "batch", "none" };
        static const int writers[] = { 1, 8, WRITERS_MAX };

        printf("\n1. durable appends through the control socket: message.send, closed loop (one request\n"
               "   outstanding per connection), %.1f s after %.1f s warm-up; latency per request, client side\n",
               MEASURE_S, WARMUP_S);
        printf("   %-12s %7s %10s %10s %10s %12s %12s\n", "ledger_sync", "writers", "acks/s", "p50 us", "p99 us",
               "daemon CPU", "client CPU");
        for (size_t p = 0; p < sizeof policies / sizeof *policies; p++) {
                struct daemon d;
                struct client c;
                char name[32];

                snprintf(name, sizeof name, "sync-%s", policies[p]);
                daemon_init(&d, name, policies[p]);
                (void) daemon_start(&d);
                client_open_retry(&c, d.sock);
                json_object_put(client_call(&c, "group.create", "{\"group\":\"" GROUP "\"}"));
                json_object_put(client_call(&c, "group.start", "{\"group\":\"" GROUP "\"}"));
                client_close(&c);
                for (size_t i = 0; i < sizeof writers / sizeof *writers; i++) {
                        struct append_result r = drive_writers(d.sock, writers[i], d.pid);

                        printf("   %-12s %7d %10.0f %10.0f %10.0f %11.0f%% %11.0f%%", policies[p], writers[i], r.rate,
                               r.lat_us.p50, r.lat_us.p99, r.daemon_cpu, r.client_cpu);
                        if (r.errors)
                                printf("   (%lu errors, first: %s)", r.errors, r.first_error);
                        printf("\n");
                        fflush(stdout);
                }
                daemon_stop(&d);
                rm_tree(d.home);
        }
}

/* --- 2. and 3. a large group ------------------------------------------------------------------ */

struct size_result {
        unsigned events;
        double first_start_ms, bulk_s, start_ms, busy_s, restart_ms, restart_busy_s;
        struct mem idle, after;
        struct stats tail, bob, alice, scan, show;
        size_t tail_n, bob_n, alice_n, scan_n;
        bool alice_more;
        uint64_t alice_unread;
};

static const char *jstr(struct json_object *o, const char *key) {
        struct json_object *v;
        return o && json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static struct json_object *message_data(const char *const *to, size_t n_to) {
        struct json_object *data = json_object_new_object(), *list = json_object_new_array();

        for (size_t i = 0; i < n_to; i++)
                json_object_array_add(list, json_object_new_string(to[i]));
        json_object_object_add(data, "text", json_object_new_string(TEXT));
        json_object_object_add(data, "to", list);
        json_object_object_add(data, "priority", json_object_new_string("normal"));
        json_object_object_add(data, "reply_required", json_object_new_boolean(0));
        return data;
}

/* Appends chat messages by "operator" up to `total` events: to alice until bob's chat.read at
 * total-50 (up_to_seq = total-50), then to alice and bob, so bob has 50 unread and alice never
 * read anything. Returns the seconds it took. */
static double bulk_append(const char *home, unsigned total) {
        static const char *const alice[] = { "alice" }, *const both[] = { "alice", "bob" };
        struct json_object *to_alice = message_data(alice, 1), *to_both = message_data(both, 2),
                           *read = json_object_new_object(), *last = NULL;
        struct ledger_recovery rec;
        struct ledger *l;
        char dir[400];
        double t0;
        int r;

        snprintf(dir, sizeof dir, "%s/groups/" GROUP, home);
        r = ledger_open(dir, GROUP, &l, &rec);
        if (r < 0)
                die("ledger_open %s: %s", dir, strerror(-r));
        if (ledger_read(l, ledger_last_seq(l), &last) >= 0 && jstr(last, "id"))
                event_id_observe(jstr(last, "id"));
        json_object_put(last);
        json_object_object_add(read, "up_to_seq", json_object_new_uint64(total - BOB_UNREAD));

        t0 = now_s();
        while (ledger_last_seq(l) < total - BOB_UNREAD - 1)
                if ((r = ledger_append(l, "chat.message", "operator", to_alice, NULL)) < 0)
                        die("ledger_append: %s", strerror(-r));
        if ((r = ledger_append(l, "chat.read", "bob", read, NULL)) < 0)
                die("ledger_append: %s", strerror(-r));
        while (ledger_last_seq(l) < total)
                if ((r = ledger_append(l, "chat.message", "operator", to_both, NULL)) < 0)
                        die("ledger_append: %s", strerror(-r));
        if ((r = ledger_sync(l)) < 0)
                die("ledger_sync: %s", strerror(-r));
        t0 = now_s() - t0;
        ledger_close(l);
        json_object_put(to_alice);
        json_object_put(to_both);
        json_object_put(read);
        return t0;
}

/* Times `runs` calls of one request (ms, request written -> reply line read); returns the
 * parsed result of the last call (new reference). */
static struct json_object *time_calls(struct client *c, const char *op, const char *args, int runs,
                                      struct stats *ret) {
        double *v = calloc((size_t) runs, sizeof *v);
        struct json_object *reply = NULL, *result = NULL, *ok;
        char *line, *text = NULL;
        int n = asprintf(&line, "{\"op\":\"%s\",\"args\":%s}\n", op, args);

        if (n < 0 || !v)
                die("out of memory");
        for (int i = 0; i < runs; i++) {
                double t0 = now_s();
                text = client_call_raw(c, line, (size_t) n);
                v[i] = (now_s() - t0) * 1e3;
                if (!text)
                        die("%s: the daemon closed the control connection", op);
        }
        reply = json_tokener_parse(text);
        if (!reply || !json_object_object_get_ex(reply, "ok", &ok) || !json_object_get_boolean(ok))
                die("%s %s: %.300s", op, args, text);
        if (json_object_object_get_ex(reply, "result", &result))
                json_object_get(result);
        json_object_put(reply);
        *ret = stats_of(v, (size_t) runs);
        free(v);
        free(line);
        return result;
}

static size_t unread_of(struct json_object *inbox, bool *more) {
        struct json_object *v;

        if (more)
                *more = json_object_object_get_ex(inbox, "unread_more", &v) && json_object_get_boolean(v);
        return json_object_object_get_ex(inbox, "unread", &v) ? json_object_array_length(v) : 0;
}

static void bench_group(unsigned total, struct size_result *res) {
        struct daemon d;
        struct client c;
        struct json_object *o, *v;
        char name[32];

        memset(res, 0, sizeof *res);
        res->events = total;
        snprintf(name, sizeof name, "group-%u", total);
        daemon_init(&d, name, "batch");

        /* The group and its members through the daemon; seqs 1-5. */
        res->first_start_ms = daemon_start(&d);
        client_open_retry(&c, d.sock);
        json_object_put(client_call(&c, "group.create", "{\"group\":\"" GROUP "\",\"title\":\"bench\"}"));
        json_object_put(client_call(&c, "actor.add", "{\"group\":\"" GROUP "\",\"actor\":\"alice\",\"kind\":\"human\"}"));
        json_object_put(client_call(&c, "actor.add", "{\"group\":\"" GROUP "\",\"actor\":\"bob\",\"kind\":\"human\"}"));
        json_object_put(client_call(&c, "group.start", "{\"group\":\"" GROUP "\"}"));
        client_close(&c);
        daemon_stop(&d);

        res->bulk_s = bulk_append(d.home, total);

        /* Start-up over the new events: group.json replay and derived state catch up. */
        res->start_ms = daemon_start(&d);
        res->busy_s = wait_quiescent(d.pid);
        res->idle = memory_of(d.pid);
        client_open_retry(&c, d.sock);
        o = client_call(&c, "group.show", "{\"group\":\"" GROUP "\"}");
        if (!json_object_object_get_ex(o, "last_seq", &v) || json_object_get_uint64(v) != total)
                fprintf(stderr, "bench/ledger: group.show: last_seq %s, expected %u\n", json_object_get_string(v), total);
        json_object_put(o);

        o = time_calls(&c, "events.tail", "{\"group\":\"" GROUP "\",\"n\":100}", QUERY_RUNS, &res->tail);
        res->tail_n = json_object_array_length(o);
        json_object_put(o);
        o = time_calls(&c, "inbox.list", "{\"group\":\"" GROUP "\",\"actor\":\"bob\",\"limit\":100}", QUERY_RUNS,
                       &res->bob);
        res->bob_n = unread_of(o, NULL);
        json_object_put(o);
        o = time_calls(&c, "inbox.list", "{\"group\":\"" GROUP "\",\"actor\":\"alice\",\"limit\":100}", QUERY_RUNS,
                       &res->alice);
        res->alice_n = unread_of(o, &res->alice_more);
        json_object_put(o);
        o = time_calls(&c, "inbox.list", "{\"group\":\"" GROUP "\",\"actor\":\"operator\",\"limit\":100}", SCAN_RUNS,
                       &res->scan);
        res->scan_n = unread_of(o, NULL);
        json_object_put(o);
        o = time_calls(&c, "actor.show", "{\"group\":\"" GROUP "\",\"actor\":\"alice\"}", SHOW_RUNS, &res->show);
        res->alice_unread = json_object_object_get_ex(o, "unread", &v) ? json_object_get_uint64(v) : 0;
        json_object_put(o);
        client_close(&c);
        sleep_s(1);
        res->after = memory_of(d.pid);
        daemon_stop(&d);

        /* A restart with everything caught up at the clean stop. */
        res->restart_ms = daemon_start(&d);
        res->restart_busy_s = wait_quiescent(d.pid);
        daemon_stop(&d);
        rm_tree(d.home);
}

#define LABEL_W 54

static void row(const char *what, const char *x, const char *y) {
        printf("   %-*s %18s %18s\n", LABEL_W, what, x, y);
}

static void row_ms(const char *what, double a, double b) {
        char x[32], y[32];

        snprintf(x, sizeof x, "%.1f ms", a);
        snprintf(y, sizeof y, "%.1f ms", b);
        row(what, x, y);
}

static void row_s(const char *what, double a, double b) {
        char x[32], y[32];

        snprintf(x, sizeof x, "%.2f s", a);
        snprintf(y, sizeof y, "%.2f s", b);
        row(what, x, y);
}

/* Two figures per size: p50 / p99 (or p50 / max for the few-call rows). */
static void row_pair(const char *what, double a1, double a2, double b1, double b2) {
        char x[40], y[40];

        snprintf(x, sizeof x, "%.2f / %.2f", a1, a2);
        snprintf(y, sizeof y, "%.2f / %.2f", b1, b2);
        row(what, x, y);
}

static void row_mem(const char *what, struct mem a, struct mem b) {
        row_pair(what, (double) a.rss_kb / 1024.0, (double) a.pss_kb / 1024.0, (double) b.rss_kb / 1024.0,
                 (double) b.pss_kb / 1024.0);
}

static void bench_large(void) {
        struct size_result s, b;
        char x[96], y[96];

        bench_group(SMALL_EVENTS, &s);
        bench_group(BIG_EVENTS, &b);

        printf("\n2./3. a group of N = 1,000 and 1,000,000 events (chat.message to alice; chat.read by bob up to\n"
               "   N-50; the last 50 to alice and bob), through the control socket (one connection), ledger_sync batch\n");
        row("", "1k events", "1M events");
        row_s("bulk ledger_append (library, daemon stopped)", s.bulk_s, b.bulk_s);
        row_ms("start-up, empty home: exec -> READY=1", s.first_start_ms, b.first_start_ms);
        row_ms("start-up after the bulk (catch-up): exec -> READY=1", s.start_ms, b.start_ms);
        row_s("  then CPU-busy after READY=1 (background verify)", s.busy_s, b.busy_s);
        row_ms("restart after a clean stop: exec -> READY=1", s.restart_ms, b.restart_ms);
        row_s("  then CPU-busy after READY=1 (background verify)", s.restart_busy_s, b.restart_busy_s);
        printf("   ms, p50 / p99 over %d calls:\n", QUERY_RUNS);
        row_pair("  events.tail n=100", s.tail.p50, s.tail.p99, b.tail.p50, b.tail.p99);
        row_pair("  inbox.list bob (cursor N-50: 50 unread)", s.bob.p50, s.bob.p99, b.bob.p50, b.bob.p99);
        row_pair("  inbox.list alice (never read, all to her: 1st page)", s.alice.p50, s.alice.p99, b.alice.p50,
                 b.alice.p99);
        printf("   ms, p50 / max over a few calls:\n");
        snprintf(x, sizeof x, "  inbox.list operator (never read, none to it) x%d", SCAN_RUNS);
        row_pair(x, s.scan.p50, s.scan.max, b.scan.p50, b.scan.max);
        snprintf(x, sizeof x, "  actor.show alice (unread count, caps at 100k) x%d", SHOW_RUNS);
        row_pair(x, s.show.p50, s.show.max, b.show.p50, b.show.max);
        printf("   supervisor memory, MB (VmRSS / Pss):\n");
        row_mem("  idle after start-up (and verify)", s.idle, b.idle);
        row_mem("  after the queries above", s.after, b.after);
        snprintf(x, sizeof x, "%zu/%zu/%zu%s/%zu", s.tail_n, s.bob_n, s.alice_n, s.alice_more ? "+" : "", s.scan_n);
        snprintf(y, sizeof y, "%zu/%zu/%zu%s/%zu", b.tail_n, b.bob_n, b.alice_n, b.alice_more ? "+" : "", b.scan_n);
        row("check, events returned: tail/bob/alice/operator", x, y);
        snprintf(x, sizeof x, "%" PRIu64, s.alice_unread);
        snprintf(y, sizeof y, "%" PRIu64, b.alice_unread);
        row("check, actor.show alice \"unread\"", x, y);
}

int main(int argc, char **argv) {
        const char *libexec = getenv("CONCLAVE_LIBEXECDIR"), *tmp = argc > 1 ? argv[1] : "/tmp";
        double t0 = now_s();

        if (!libexec || argc > 2) {
                fprintf(stderr, "usage: CONCLAVE_LIBEXECDIR=DIR bench/ledger [TMPDIR]\n");
                return 2;
        }
        snprintf(supervisor_path, sizeof supervisor_path, "%s/conclave-supervisor", libexec);
        snprintf(base_dir, sizeof base_dir, "%s/conclave-bench-ledger.XXXXXX", tmp);
        if (!mkdtemp(base_dir))
                die("mkdtemp %s: %m", base_dir);
        atexit(cleanup);
        srand((unsigned) getpid());
        signal(SIGPIPE, SIG_IGN);
        setvbuf(stdout, NULL, _IOLBF, 0);

        printf("bench/ledger (scratch in %s)\n", base_dir);
        bench_appends();
        bench_large();
        printf("(bench/ledger took %.0f s)\n", now_s() - t0);
        return EXIT_SUCCESS;
}
