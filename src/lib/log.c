/* Journal or stderr logging for all Conclave programs (see log.h). */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include "log.h"

#define LOG_FIELDS_MAX 16
#define LOG_MESSAGE_MAX 4096

static const char *log_ident = "conclave";
static bool log_journal = false;
static int log_max_level = LOG_INFO;
static bool log_level_from_env = false; /* CONCLAVE_LOG_LEVEL beats the config file */

static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

void log_setup(const char *identifier, enum log_target target) {
        const char *e;

        if (identifier)
                log_ident = identifier;

        e = getenv("CONCLAVE_LOG_TARGET");
        if (target == LOG_TARGET_AUTO && e) {
                if (streq(e, "journal"))
                        target = LOG_TARGET_JOURNAL;
                else if (streq(e, "stderr"))
                        target = LOG_TARGET_STDERR;
        }
        if (target == LOG_TARGET_AUTO)
                log_journal = stderr_is_journal();
        else
                log_journal = target == LOG_TARGET_JOURNAL;

        e = getenv("CONCLAVE_LOG_LEVEL");
        if (e && log_level_from_string(e) >= 0) {
                log_max_level = log_level_from_string(e);
                log_level_from_env = true;
        }
}

const char *log_identifier(void) {
        return log_ident;
}

bool log_to_journal(void) {
        return log_journal;
}

void log_set_max_level(int level) {
        if (!log_level_from_env && level >= LOG_EMERG && level <= LOG_DEBUG)
                log_max_level = level;
}

int log_get_max_level(void) {
        return log_max_level;
}

static const char *const level_names[] = {
        [LOG_EMERG] = "emerg",   [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit",
        [LOG_ERR] = "error",     [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
        [LOG_INFO] = "info",     [LOG_DEBUG] = "debug",
};

int log_level_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
                if (streq(s, level_names[i]))
                        return (int) i;
        if (streq(s, "warn"))
                return LOG_WARNING;
        if (streq(s, "err"))
                return LOG_ERR;
        return -EINVAL;
}

const char *log_level_to_string(int level) {
        if (level < 0 || (size_t) level >= ELEMENTSOF(level_names))
                return "unknown";
        return level_names[level];
}

static void log_to_stderr(int level, int error, const char *fields, const char *message) {
        const char *g = NULL;
        size_t glen = 0;

        /* Show the most useful Conclave field inline so foreground output stays readable. */
        if (fields) {
                for (const char *p = fields; *p;) {
                        const char *end = strchrnul(p, '\n');
                        if (!g && (strncmp(p, "CONCLAVE_WORKER=", 16) == 0 ||
                                   strncmp(p, "CONCLAVE_GROUP=", 15) == 0 ||
                                   strncmp(p, "CONCLAVE_ACTOR=", 15) == 0 ||
                                   strncmp(p, "CONCLAVE_CHANNEL=", 17) == 0)) {
                                g = p + 9;
                                glen = (size_t) (end - g);
                        }
                        p = *end ? end + 1 : end;
                }
        }

        fprintf(stderr, "%s[%d]: %s: %s%.*s%s%s%s%s\n", log_ident, (int) getpid(),
                log_level_to_string(level), g ? "[" : "", (int) glen, g ? g : "", g ? "] " : "",
                message, error ? ": " : "", error ? strerror(abs(error)) : "");
}

static void log_to_journald(int level, int error, const char *file, int line, const char *func,
                            const char *fields, const char *message) {
        char buf_message[LOG_MESSAGE_MAX + 64], buf_priority[32], buf_ident[128], buf_file[512],
                buf_line[32], buf_func[256], buf_errno[32];
        struct iovec iov[8 + LOG_FIELDS_MAX];
        size_t n = 0;

#define IOV_STR(s) (struct iovec){ .iov_base = (void *) (s), .iov_len = strlen(s) }
        if (error)
                snprintf(buf_message, sizeof buf_message, "MESSAGE=%s: %s", message,
                         strerror(abs(error)));
        else
                snprintf(buf_message, sizeof buf_message, "MESSAGE=%s", message);
        snprintf(buf_priority, sizeof buf_priority, "PRIORITY=%d", level);
        snprintf(buf_ident, sizeof buf_ident, "SYSLOG_IDENTIFIER=%s", log_ident);
        snprintf(buf_file, sizeof buf_file, "CODE_FILE=%s", file);
        snprintf(buf_line, sizeof buf_line, "CODE_LINE=%d", line);
        snprintf(buf_func, sizeof buf_func, "CODE_FUNC=%s", func);
        iov[n++] = IOV_STR(buf_message);
        iov[n++] = IOV_STR(buf_priority);
        iov[n++] = IOV_STR(buf_ident);
        iov[n++] = IOV_STR(buf_file);
        iov[n++] = IOV_STR(buf_line);
        iov[n++] = IOV_STR(buf_func);
        if (error) {
                snprintf(buf_errno, sizeof buf_errno, "ERRNO=%d", abs(error));
                iov[n++] = IOV_STR(buf_errno);
        }
        if (fields)
                for (const char *p = fields; *p && n < ELEMENTSOF(iov);) {
                        const char *end = strchrnul(p, '\n');
                        if (end > p && memchr(p, '=', (size_t) (end - p)))
                                iov[n++] = (struct iovec){ .iov_base = (void *) p,
                                                           .iov_len = (size_t) (end - p) };
                        p = *end ? end + 1 : end;
                }
#undef IOV_STR
        if (sd_journal_sendv(iov, (int) n) < 0)
                log_to_stderr(level, error, fields, message);
}

int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *fields, const char *format, ...) {
        char message[LOG_MESSAGE_MAX];
        int saved_errno = errno;
        va_list ap;

        if (level <= log_max_level) {
                va_start(ap, format);
                vsnprintf(message, sizeof message, format, ap);
                va_end(ap);

                if (log_journal)
                        log_to_journald(level, error, file, line, func, fields, message);
                else
                        log_to_stderr(level, error, fields, message);
        }
        errno = saved_errno;
        return error ? -abs(error) : 0;
}
