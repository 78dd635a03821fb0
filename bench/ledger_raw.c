/* bench/ledger_raw: raw ledger figures: appends/s (no sync, fdatasync per event, group commit
 * every 64 events), open time of a 1,000,000-event ledger with a valid index and with the index
 * rebuilt, ledger_tail(100) and ledger_read() latency, and max RSS. Prints figures; asserts
 * nothing. Usage: bench/ledger_raw DIR (DIR is created if needed; ~300 MB of scratch files). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ledger.h"

#define BIG_EVENTS 1000000u
#define SMALL_EVENTS 1000u
#define SYNC_EVENTS 2000u
#define GROUP_COMMIT 64u
#define GROUP_EVENTS (GROUP_COMMIT * 200u)
#define RUNS 100

static double now_s(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static long max_rss_kb(void) {
        struct rusage ru;
        return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

static void die(const char *what, int r) {
        fprintf(stderr, "ledger_raw: %s: %s\n", what, strerror(-r));
        exit(EXIT_FAILURE);
}

/* A fresh ledger directory: DIR/name without a previous run's files. */
static char *fresh_dir(const char *dir, const char *name) {
        char *path = NULL, file[4096];

        if (asprintf(&path, "%s/%s", dir, name) < 0)
                die("asprintf", -ENOMEM);
        if (mkdir(path, 0700) < 0 && errno != EEXIST)
                die(path, -errno);
        snprintf(file, sizeof file, "%s/ledger.jsonl", path);
        (void) unlink(file);
        snprintf(file, sizeof file, "%s/state/ledger.idx", path);
        (void) unlink(file);
        return path;
}

static struct ledger *open_or_die(const char *dir, struct ledger_recovery *rec) {
        struct ledger_recovery local;
        struct ledger *l = NULL;
        int r = ledger_open(dir, "bench", &l, rec ? rec : &local);

        if (r < 0)
                die("ledger_open", r);
        return l;
}

/* A typical chat message: ~100 bytes of text, recipients, priority. */
static struct json_object *message_data(void) {
        struct json_object *data = json_object_new_object(), *to = json_object_new_array();

        json_object_array_add(to, json_object_new_string("@all"));
        json_object_object_add(data, "text",
                               json_object_new_string("The build on main is green again; I'll pick up the ledger "
                                                      "benchmark next, ping me if you need review."));
        json_object_object_add(data, "to", to);
        json_object_object_add(data, "priority", json_object_new_string("normal"));
        return data;
}

/* Appends n events, fdatasync() every sync_every events (0: never). Returns appends/s. */
static double append_events(struct ledger *l, struct json_object *data, unsigned n, unsigned sync_every) {
        double t0 = now_s();
        int r;

        for (unsigned i = 1; i <= n; i++) {
                r = ledger_append(l, "chat.message", "alice", data, NULL);
                if (r < 0)
                        die("ledger_append", r);
                if (sync_every > 0 && i % sync_every == 0 && (r = ledger_sync(l)) < 0)
                        die("ledger_sync", r);
        }
        if (sync_every > 0 && n % sync_every != 0 && (r = ledger_sync(l)) < 0)
                die("ledger_sync", r);
        return n / (now_s() - t0);
}

static int count_cb(struct json_object *event, void *userdata) {
        (*(unsigned *) userdata)++;
        return 0;
}

int main(int argc, char **argv) {
        struct json_object *data;
        struct ledger_recovery rec;
        struct ledger *l;
        char *small, *big, *sync_dir, *group_dir;
        double t0, rate, open_ms, rebuild_ms, samples[RUNS];
        unsigned seen;
        int r;

        if (argc != 2) {
                fprintf(stderr, "Usage: %s DIR\n", argv[0]);
                return EXIT_FAILURE;
        }
        if (mkdir(argv[1], 0700) < 0 && errno != EEXIST)
                die(argv[1], -errno);
        data = message_data();
        small = fresh_dir(argv[1], "small");
        big = fresh_dir(argv[1], "big");
        sync_dir = fresh_dir(argv[1], "sync");
        group_dir = fresh_dir(argv[1], "group");

        l = open_or_die(small, NULL);
        append_events(l, data, SMALL_EVENTS, 0);
        ledger_close(l);
        printf("max RSS after %u events:                 %ld KiB\n", SMALL_EVENTS, max_rss_kb());

        l = open_or_die(big, NULL);
        rate = append_events(l, data, BIG_EVENTS, 0);
        printf("appends, no sync (%u events):       %.0f/s (%.2f us each, %" PRIu64 " bytes)\n", BIG_EVENTS,
               rate, 1e6 / rate, ledger_size_bytes(l));
        ledger_close(l);
        printf("max RSS after %u events:              %ld KiB\n", BIG_EVENTS, max_rss_kb());

        /* The first open comes right after 300 MB were written (dirty page cache). */
        for (int i = 0; i < 11; i++) {
                t0 = now_s();
                l = open_or_die(big, &rec);
                samples[i] = (now_s() - t0) * 1e3;
                if (rec.index_rebuilt)
                        die("open rebuilt a valid index", -EINVAL);
                if (i == 0)
                        open_ms = samples[0];
                if (i < 10)
                        ledger_close(l);
        }
        qsort(samples + 1, 10, sizeof samples[0], cmp_double);
        printf("open, valid index (%u events):      first %.3f ms, median of 10 more %.3f ms\n", BIG_EVENTS,
               open_ms, samples[1 + 5]);

        for (int i = 0; i < RUNS; i++) {
                seen = 0;
                t0 = now_s();
                r = ledger_tail(l, 100, count_cb, &seen);
                samples[i] = (now_s() - t0) * 1e6;
                if (r != 100 || seen != 100)
                        die("ledger_tail", r < 0 ? r : -EIO);
        }
        qsort(samples, RUNS, sizeof samples[0], cmp_double);
        printf("ledger_tail(100), median of %d:            %.1f us\n", RUNS, samples[RUNS / 2]);

        for (int i = 0; i < RUNS; i++) {
                struct json_object *ev = NULL;
                uint64_t seq = 1 + (uint64_t) rand() % BIG_EVENTS;

                t0 = now_s();
                r = ledger_read(l, seq, &ev);
                samples[i] = (now_s() - t0) * 1e6;
                if (r < 0)
                        die("ledger_read", r);
                json_object_put(ev);
        }
        qsort(samples, RUNS, sizeof samples[0], cmp_double);
        printf("ledger_read(random seq), median of %d:     %.1f us\n", RUNS, samples[RUNS / 2]);
        ledger_close(l);

        {
                char idx[4096];
                snprintf(idx, sizeof idx, "%s/state/ledger.idx", big);
                (void) unlink(idx);
        }
        t0 = now_s();
        l = open_or_die(big, &rec);
        rebuild_ms = (now_s() - t0) * 1e3;
        printf("open, index rebuilt (%u events):    %.0f ms%s\n", BIG_EVENTS, rebuild_ms,
               rec.index_rebuilt ? "" : " (index NOT rebuilt?!)");
        ledger_close(l);
        printf("max RSS after the rebuild:                 %ld KiB\n", max_rss_kb());

        l = open_or_die(sync_dir, NULL);
        rate = append_events(l, data, SYNC_EVENTS, 1);
        printf("appends, fdatasync each (%u events):  %.0f/s (%.1f us each)\n", SYNC_EVENTS, rate, 1e6 / rate);
        ledger_close(l);

        l = open_or_die(group_dir, NULL);
        rate = append_events(l, data, GROUP_EVENTS, GROUP_COMMIT);
        printf("appends, fdatasync every %u (%u events): %.0f/s (%.1f us each)\n", GROUP_COMMIT, GROUP_EVENTS,
               rate, 1e6 / rate);
        ledger_close(l);

        json_object_put(data);
        free(small);
        free(big);
        free(sync_dir);
        free(group_dir);
        return EXIT_SUCCESS;
}
