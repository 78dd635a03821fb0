/* bench/startup: time from exec of conclave-supervisor to its READY=1 (as systemd would receive
 * it), and the idle memory (RSS and PSS from /proc/PID/smaps_rollup) of the three processes.
 * Prints figures; asserts nothing. Usage: bench/startup [RUNS] (run via `make bench`). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

/* Sum of "Rss:" and "Pss:" (kB) of pid and its direct children. */
static void memory_of_tree(pid_t pid, long *rss_kb, long *pss_kb, int *nproc) {
        char path[64], line[256];
        FILE *f;
        pid_t pids[16];
        int n = 0;

        pids[n++] = pid;
        snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int) pid, (int) pid);
        f = fopen(path, "re");
        if (f) {
                int c;
                while (n < 16 && fscanf(f, "%d", &c) == 1)
                        pids[n++] = c;
                fclose(f);
        }
        *rss_kb = *pss_kb = 0;
        for (int i = 0; i < n; i++) {
                snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int) pids[i]);
                f = fopen(path, "re");
                if (!f)
                        continue;
                while (fgets(line, sizeof line, f)) {
                        long v;
                        if (sscanf(line, "Rss: %ld kB", &v) == 1)
                                *rss_kb += v;
                        else if (sscanf(line, "Pss: %ld kB", &v) == 1)
                                *pss_kb += v;
                }
                fclose(f);
        }
        *nproc = n;
}

int main(int argc, char **argv) {
        int runs = argc > 1 ? atoi(argv[1]) : 20;
        const char *libexec = getenv("CONCLAVE_LIBEXECDIR");
        char dir[] = "/tmp/conclave-bench.XXXXXX", sock[64], cfg[64], supervisor[512], text[128];
        double *ready = calloc((size_t) runs, sizeof *ready);
        long rss = 0, pss = 0;
        int nproc = 0, port;

        if (!libexec || !ready || runs < 1 || !mkdtemp(dir)) {
                fprintf(stderr, "usage: CONCLAVE_LIBEXECDIR=DIR bench/startup [RUNS]\n");
                return 2;
        }
        snprintf(supervisor, sizeof supervisor, "%s/conclave-supervisor", libexec);
        snprintf(sock, sizeof sock, "%s/systemd-notify.sock", dir);
        snprintf(cfg, sizeof cfg, "%s/config.toml", dir);
        srand((unsigned) getpid());
        port = 30000 + rand() % 20000;
        {
                FILE *f = fopen(cfg, "we");
                if (!f)
                        return 1;
                fprintf(f, "[gateway]\nport = %d\n", port);
                fclose(f);
        }
        setenv("CONCLAVE_HOME", dir, 1);
        setenv("CONCLAVE_RUNTIME_DIR", dir, 1);
        setenv("CONCLAVE_CONFIG", cfg, 1);
        setenv("CONCLAVE_LOG_TARGET", "stderr", 1);
        setenv("CONCLAVE_LOG_LEVEL", "warning", 1);
        setenv("NOTIFY_SOCKET", sock, 1);

        for (int i = 0; i < runs; i++) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                struct timeval tv = { .tv_sec = 10 };
                char buf[4096];
                double start;
                pid_t pid;
                int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

                snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock);
                unlink(sock);
                if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                        perror("notify socket");
                        return 1;
                }
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
                start = now_ms();
                pid = fork();
                if (pid == 0) {
                        execl(supervisor, "conclave-supervisor", (char *) NULL);
                        _exit(127);
                }
                ready[i] = -1;
                for (;;) {
                        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
                        if (n < 0)
                                break;
                        buf[n] = 0;
                        if (strstr(buf, "READY=1")) {
                                ready[i] = now_ms() - start;
                                break;
                        }
                }
                if (i == runs - 1 && ready[i] >= 0) {
                        sleep(2); /* idle */
                        memory_of_tree(pid, &rss, &pss, &nproc);
                }
                kill(pid, SIGTERM);
                waitpid(pid, NULL, 0);
                close(fd);
                if (ready[i] < 0) {
                        fprintf(stderr, "run %d: no READY=1 within 10 s\n", i);
                        return 1;
                }
        }
        qsort(ready, (size_t) runs, sizeof *ready, cmp_double);
        snprintf(text, sizeof text, "%d runs", runs);
        printf("startup (%s): exec -> READY=1  min %.1f ms  p50 %.1f ms  p90 %.1f ms  max %.1f ms\n", text,
               ready[0], ready[runs / 2], ready[(runs * 9) / 10 < runs ? (runs * 9) / 10 : runs - 1],
               ready[runs - 1]);
        printf("idle memory of %d processes (supervisor + workers): RSS %.1f MB  PSS %.1f MB\n", nproc,
               (double) rss / 1024.0, (double) pss / 1024.0);
        unlink(sock);
        unlink(cfg);
        {
                char state[96];
                snprintf(state, sizeof state, "%s/daemon_state.json", dir);
                unlink(state);
        }
        rmdir(dir);
        free(ready);
        return 0;
}
