/* bench/llm: what Conclave adds to an LLM turn, measured around a provider that answers at once.
 *  1. Overhead per turn, closed loop (one question at a time to an llm actor, N turns):
 *     - in:  message durable (message.send answered; the answer is sent once the event is
 *            durable, so this errs late, by one local socket hop) → the provider has the whole
 *            request (its HTTP handler sees the last byte of the body);
 *     - out: the provider hands the last byte of the stream to the kernel → the reply is durable
 *            (seen on events.follow, which streams an event once it is durable; again late by
 *            one hop);
 *     and the supervisor's own view from llm.usage ("overhead_to_provider_us": picking up the
 *     durable message → the request handed to curl in conclave-channels).
 *  2. Memory per concurrent streaming request: VmRSS of conclave-supervisor and
 *     conclave-channels idle, then with K streams held open by the provider (a piece every
 *     100 ms), divided by K.
 * The provider is in this process (libmicrohttpd, a thread per connection) so both ends use one
 * CLOCK_MONOTONIC. Prints figures; asserts nothing.
 * Usage: CONCLAVE_LIBEXECDIR=DIR bench/llm [TURNS [STREAMS [always|batch|none]]] (default 300 64
 * batch; via `make bench-llm`). */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "control.h"

#define GROUP "b"
#define MAX_TURNS 10000
#define READY_TIMEOUT_S 30.0
#define HOLD_PIECES 50 /* a held stream: 50 pieces 100 ms apart (5 s) */

static char base_dir[256];
static pid_t supervisor_pid;

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...) {
        int saved = errno;
        va_list ap;

        fputs("bench/llm: ", stderr);
        errno = saved;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        exit(EXIT_FAILURE);
}

static uint64_t now_us(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static void sleep_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static void print_stats(const char *what, uint64_t *v, size_t n) {
        size_t i99 = (n * 99) / 100;

        if (n == 0) {
                printf("  %-58s no samples\n", what);
                return;
        }
        qsort(v, n, sizeof *v, cmp_u64);
        printf("  %-58s p50 %7.3f ms   p99 %7.3f ms   max %7.3f ms   (n=%zu)\n", what, (double) v[n / 2] / 1000.0,
               (double) v[i99 < n ? i99 : n - 1] / 1000.0, (double) v[n - 1] / 1000.0, n);
}

/* --- the provider: OpenAI-compatible, in this process ------------------------------------------ */

struct turn_times {
        uint64_t request;   /* the provider has the whole request */
        uint64_t last_byte; /* the last piece handed to the kernel */
};
static struct turn_times times[MAX_TURNS + 1];
static pthread_mutex_t times_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned streams_open;

struct conn {
        char *body;
        size_t len;
        bool hold;
        long turn;
        int piece;
        char buf[512];
        size_t buf_len, buf_pos;
};

static void make_piece(struct conn *c) {
        static const char *const parts[] = { "The answer", " is forty", "-two." };
        int n = c->hold ? HOLD_PIECES : 3;

        if (c->piece < n)
                c->buf_len = (size_t) snprintf(c->buf, sizeof c->buf,
                                               "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"m\","
                                               "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%s\"},\"finish_reason\":null}]}\n\n",
                                               c->hold ? "." : parts[c->piece]);
        else
                c->buf_len = (size_t) snprintf(c->buf, sizeof c->buf,
                                               "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"m\","
                                               "\"choices\":[],\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":5}}\n\n"
                                               "data: [DONE]\n\n");
        c->buf_pos = 0;
}

static ssize_t reader(void *cls, uint64_t pos, char *out, size_t max) {
        struct conn *c = cls;
        int n = c->hold ? HOLD_PIECES : 3;
        size_t k;

        if (c->buf_pos == c->buf_len) {
                if (c->piece > n) {
                        if (c->turn > 0 && c->turn <= MAX_TURNS) {
                                pthread_mutex_lock(&times_lock);
                                times[c->turn].last_byte = now_us();
                                pthread_mutex_unlock(&times_lock);
                        }
                        return MHD_CONTENT_READER_END_OF_STREAM;
                }
                if (c->hold && c->piece > 0)
                        sleep_ms(100); /* a thread per connection: sleeping holds only this stream */
                make_piece(c);
                c->piece++;
        }
        k = c->buf_len - c->buf_pos < max ? c->buf_len - c->buf_pos : max;
        memcpy(out, c->buf + c->buf_pos, k);
        c->buf_pos += k;
        return (ssize_t) k;
}

static void conn_free(void *cls) {
        struct conn *c = cls;

        if (c->hold)
                __atomic_sub_fetch(&streams_open, 1, __ATOMIC_SEQ_CST);
        free(c->body);
        free(c);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
                               const char *version, const char *upload, size_t *upload_size, void **state) {
        struct conn *c = *state;
        struct MHD_Response *r;
        enum MHD_Result ret;
        const char *q;

        if (!c) {
                c = calloc(1, sizeof *c);
                if (!c)
                        return MHD_NO;
                *state = c;
                return MHD_YES;
        }
        if (*upload_size > 0) {
                char *n = realloc(c->body, c->len + *upload_size + 1);
                if (!n)
                        return MHD_NO;
                c->body = n;
                memcpy(c->body + c->len, upload, *upload_size);
                c->len += *upload_size;
                c->body[c->len] = 0;
                *upload_size = 0;
                return MHD_YES;
        }
        /* The whole request is here. */
        c->hold = c->body && strstr(c->body, "\"model\":\"hold\"");
        q = c->body ? strstr(c->body, "bench-q-") : NULL;
        c->turn = q ? strtol(q + 8, NULL, 10) : 0;
        if (!c->hold && c->turn > 0 && c->turn <= MAX_TURNS) {
                pthread_mutex_lock(&times_lock);
                times[c->turn].request = now_us();
                pthread_mutex_unlock(&times_lock);
        }
        if (c->hold)
                __atomic_add_fetch(&streams_open, 1, __ATOMIC_SEQ_CST);
        *state = NULL; /* the response owns it now */
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1024, reader, c, conn_free);
        if (!r) {
                conn_free(c);
                return MHD_NO;
        }
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        ret = MHD_queue_response(mc, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ret;
}

static void request_done(void *cls, struct MHD_Connection *mc, void **state, enum MHD_RequestTerminationCode t) {
        struct conn *c = *state;

        if (c) { /* never got as far as a response */
                free(c->body);
                free(c);
        }
}

/* --- the daemon ----------------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        (void) (type == FTW_DP || type == FTW_D ? rmdir(path) : unlink(path));
        return 0;
}

static void cleanup(void) {
        if (supervisor_pid > 0) {
                kill(supervisor_pid, SIGKILL);
                waitpid(supervisor_pid, NULL, 0);
                supervisor_pid = 0;
        }
        if (*base_dir)
                (void) nftw(base_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void start_daemon(const char *libexec, const char *home, const char *run, int provider_port, const char *sync) {
        char config[512], notify[512], path[600], buf[4096];
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct timeval tv = { .tv_sec = 1 };
        uint64_t start = now_us();
        FILE *f;
        int fd;

        snprintf(config, sizeof config, "%s/config.toml", home);
        snprintf(notify, sizeof notify, "%s/notify.sock", home);
        f = fopen(config, "we");
        if (!f)
                die("%s: %m", config);
        fprintf(f, "[runtime]\nlog_level = \"warning\"\nledger_sync = \"%s\"\n[gateway]\nenabled = false\n"
                   "[providers.p]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:%d/v1\"\nmodel = \"m\"\n"
                   "timeout = \"60s\"\nretries = 0\n", sync, provider_port);
        fclose(f);
        if (strlen(notify) >= sizeof sa.sun_path)
                die("%s: path too long for a socket", notify);
        memcpy(sa.sun_path, notify, strlen(notify) + 1);
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                die("notify socket: %m");
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setenv("CONCLAVE_HOME", home, 1);
        setenv("CONCLAVE_RUNTIME_DIR", run, 1);
        setenv("CONCLAVE_LOG_TARGET", "stderr", 1);
        setenv("NOTIFY_SOCKET", notify, 1);
        snprintf(path, sizeof path, "%s/conclave-supervisor", libexec);
        supervisor_pid = fork();
        if (supervisor_pid < 0)
                die("fork: %m");
        if (supervisor_pid == 0) {
                execl(path, "conclave-supervisor", (char *) NULL);
                _exit(127);
        }
        for (;;) {
                ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
                if (n >= 0) {
                        buf[n] = 0;
                        if (strstr(buf, "READY=1"))
                                break;
                        continue;
                }
                if (waitpid(supervisor_pid, NULL, WNOHANG) == supervisor_pid) {
                        supervisor_pid = 0;
                        die("conclave-supervisor exited before READY=1");
                }
                if ((double) (now_us() - start) / 1e6 > READY_TIMEOUT_S)
                        die("no READY=1 within %.0f s", READY_TIMEOUT_S);
        }
        close(fd);
}

static int connect_control(const char *run) {
        char sock[512];
        int fd;

        snprintf(sock, sizeof sock, "%s/control.sock", run);
        fd = control_connect(sock);
        if (fd < 0)
                die("cannot connect to %s: %s", sock, strerror(-fd));
        return fd;
}

static struct json_object *call(int fd, const char *op, const char *args_json) {
        struct json_object *args = args_json ? json_tokener_parse(args_json) : NULL, *result = NULL, *err = NULL;
        int r = control_call(fd, op, args, &result, &err);

        if (r < 0)
                die("%s %s: %s", op, args_json ? args_json : "", err ? json_object_to_json_string(err) : strerror(-r));
        json_object_put(args);
        json_object_put(err);
        return result;
}

static long rss_kb(pid_t pid) {
        char path[64], line[256];
        long kb = -1;
        FILE *f;

        snprintf(path, sizeof path, "/proc/%d/status", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof line, f))
                if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
                        break;
        fclose(f);
        return kb;
}

static pid_t channels_pid(int fd) {
        struct json_object *st = call(fd, "status", NULL), *workers, *v;
        pid_t pid = 0;

        if (json_object_object_get_ex(st, "workers", &workers))
                for (size_t i = 0; i < json_object_array_length(workers); i++) {
                        struct json_object *w = json_object_array_get_idx(workers, i);
                        if (json_object_object_get_ex(w, "name", &v) && strcmp(json_object_get_string(v), "channels") == 0 &&
                            json_object_object_get_ex(w, "pid", &v))
                                pid = json_object_get_int(v);
                }
        json_object_put(st);
        return pid;
}

/* Reads followed events until the reply to event_id arrives; its arrival time. Collects the
 * supervisor's own overhead figure from llm.usage on the way. */
static uint64_t wait_reply(int follow, const char *event_id, uint64_t *usage_overhead) {
        for (;;) {
                char *line = NULL;
                struct json_object *o, *ev, *data, *v;
                int r = control_read_line(follow, &line, 1024 * 1024);
                uint64_t t = now_us();

                if (r < 0)
                        die("events.follow: %s", strerror(-r));
                o = json_tokener_parse(line);
                free(line);
                if (!o || !json_object_object_get_ex(o, "event", &ev) || !json_object_object_get_ex(ev, "data", &data)) {
                        json_object_put(o);
                        continue;
                }
                if (json_object_object_get_ex(ev, "kind", &v) && strcmp(json_object_get_string(v), "llm.usage") == 0 &&
                    json_object_object_get_ex(data, "overhead_to_provider_us", &v))
                        *usage_overhead = json_object_get_uint64(v);
                if (json_object_object_get_ex(data, "reply_to", &v) && strcmp(json_object_get_string(v), event_id) == 0) {
                        json_object_put(o);
                        return t;
                }
                json_object_put(o);
        }
}

int main(int argc, char **argv) {
        const char *libexec = getenv("CONCLAVE_LIBEXECDIR");
        long turns = argc > 1 ? strtol(argv[1], NULL, 10) : 300, streams = argc > 2 ? strtol(argv[2], NULL, 10) : 64;
        const char *sync = argc > 3 ? argv[3] : "batch";
        static uint64_t in[MAX_TURNS], out[MAX_TURNS], own[MAX_TURNS];
        struct MHD_Daemon *mhd;
        const union MHD_DaemonInfo *info;
        char home[320], run[352], args[512], *line = NULL;
        int fd, follow, port;
        long n_in = 0;
        pid_t chp;
        long sup0, ch0, sup1, ch1;

        if (!libexec)
                die("set CONCLAVE_LIBEXECDIR to the directory with conclave-supervisor");
        if (turns < 1 || turns > MAX_TURNS || streams < 1 || streams > 64 ||
            !(strcmp(sync, "batch") == 0 || strcmp(sync, "always") == 0 || strcmp(sync, "none") == 0))
                die("usage: bench/llm [TURNS (1-%d) [STREAMS (1-64) [always|batch|none]]]", MAX_TURNS);
        signal(SIGPIPE, SIG_IGN);
        snprintf(base_dir, sizeof base_dir, "%s/bench-llm.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(base_dir))
                die("mkdtemp: %m");
        atexit(cleanup);
        snprintf(home, sizeof home, "%s/home", base_dir);
        snprintf(run, sizeof run, "%s/run", base_dir);
        if (mkdir(home, 0700) < 0 || mkdir(run, 0700) < 0)
                die("mkdir: %m");

        mhd = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL,
                               NULL, handler, NULL, MHD_OPTION_NOTIFY_COMPLETED, request_done, NULL,
                               MHD_OPTION_CONNECTION_LIMIT, (unsigned) 256, MHD_OPTION_END);
        if (!mhd || !(info = MHD_get_daemon_info(mhd, MHD_DAEMON_INFO_BIND_PORT)))
                die("cannot start the provider");
        port = info->port;
        start_daemon(libexec, home, run, port, sync);
        fd = connect_control(run);
        json_object_put(call(fd, "group.create", "{\"group\":\"" GROUP "\"}"));
        json_object_put(call(fd, "actor.add", "{\"group\":\"" GROUP "\",\"actor\":\"bot\",\"kind\":\"llm\",\"llm\":{\"provider\":\"p\","
                                               "\"context_messages\":0}}"));
        for (int i = 0; i < 4; i++) {
                snprintf(args, sizeof args, "{\"group\":\"" GROUP "\",\"actor\":\"hold%d\",\"kind\":\"llm\",\"llm\":{\"provider\":\"p\","
                         "\"model\":\"hold\",\"concurrency\":16,\"context_messages\":0}}", i);
                json_object_put(call(fd, "actor.add", args));
        }
        json_object_put(call(fd, "group.start", "{\"group\":\"" GROUP "\"}"));
        follow = connect_control(run);
        if (dprintf(follow, "{\"op\":\"events.follow\",\"args\":{\"group\":\"" GROUP "\"}}\n") < 0 ||
            control_read_line(follow, &line, 65536) < 0)
                die("events.follow: %m");
        free(line);

        printf("bench/llm: an llm actor answering through conclave-channels; the provider in this process "
               "(127.0.0.1:%d, answers at once)\n", port);
        printf("Overhead per turn ([runtime] ledger_sync = %s; %ld turns, one at a time):\n", sync, turns);
        for (long i = 1; i <= turns; i++) {
                struct json_object *r, *v;
                uint64_t acked, seen, overhead = 0;
                char id[64];

                snprintf(args, sizeof args, "{\"group\":\"" GROUP "\",\"to\":[\"bot\"],\"text\":\"bench-q-%ld\"}", i);
                r = call(fd, "message.send", args);
                acked = now_us();
                if (!json_object_object_get_ex(r, "event_id", &v))
                        die("message.send: no event_id");
                snprintf(id, sizeof id, "%s", json_object_get_string(v));
                json_object_put(r);
                seen = wait_reply(follow, id, &overhead);
                pthread_mutex_lock(&times_lock);
                if (times[i].request && times[i].last_byte) {
                        /* The request can reach the provider before the answer reaches us. */
                        in[n_in] = times[i].request > acked ? times[i].request - acked : 0;
                        out[n_in] = seen > times[i].last_byte ? seen - times[i].last_byte : 0;
                        own[n_in] = overhead;
                        n_in++;
                }
                pthread_mutex_unlock(&times_lock);
        }
        print_stats("message durable -> provider has the request", in, (size_t) n_in);
        print_stats("  of which: supervisor pickup -> request handed to curl", own, (size_t) n_in);
        print_stats("provider's last byte -> reply durable", out, (size_t) n_in);

        /* Memory: idle, then with `streams` streams held open. */
        chp = channels_pid(fd);
        sleep_ms(500);
        sup0 = rss_kb(supervisor_pid);
        ch0 = rss_kb(chp);
        for (long i = 0; i < streams; i++) {
                snprintf(args, sizeof args, "{\"group\":\"" GROUP "\",\"to\":[\"hold%ld\"],\"text\":\"hold %ld\"}", i % 4, i);
                json_object_put(call(fd, "message.send", args));
        }
        for (int i = 0; i < 300 && __atomic_load_n(&streams_open, __ATOMIC_SEQ_CST) < (unsigned) streams; i++)
                sleep_ms(10);
        sleep_ms(300);
        sup1 = rss_kb(supervisor_pid);
        ch1 = rss_kb(chp);
        printf("Memory with %u of %ld streaming requests open (VmRSS):\n", __atomic_load_n(&streams_open, __ATOMIC_SEQ_CST),
               streams);
        printf("  conclave-channels    idle %6ld kB, streaming %6ld kB: %+.1f kB per request\n", ch0, ch1,
               (double) (ch1 - ch0) / (double) streams);
        printf("  conclave-supervisor  idle %6ld kB, streaming %6ld kB: %+.1f kB per request\n", sup0, sup1,
               (double) (sup1 - sup0) / (double) streams);

        close(follow);
        close(fd);
        kill(supervisor_pid, SIGTERM);
        waitpid(supervisor_pid, NULL, 0);
        supervisor_pid = 0;
        MHD_stop_daemon(mhd);
        return 0;
}
