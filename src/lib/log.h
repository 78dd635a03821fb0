/* Structured logging: the journal (sd_journal_send) when stderr is connected to it, readable
 * stderr lines otherwise. Every entry carries SYSLOG_IDENTIFIER, CODE_* and optional CONCLAVE_*
 * fields. */
#pragma once

#include <syslog.h>

#include "macro.h"

enum log_target {
        LOG_TARGET_AUTO,    /* journal if JOURNAL_STREAM names our stderr, else stderr */
        LOG_TARGET_JOURNAL,
        LOG_TARGET_STDERR,
};

void log_setup(const char *identifier, enum log_target target);
const char *log_identifier(void);
bool log_to_journal(void);
void log_set_max_level(int level);
int log_get_max_level(void);

/* "debug", "info", "notice", "warning", "error" → LOG_*; -EINVAL for anything else. */
int log_level_from_string(const char *s);
const char *log_level_to_string(int level);

/* fields: NULL, or newline-separated "KEY=value" journal fields (e.g. "CONCLAVE_WORKER=gateway").
 * Returns -abs(error) when error is non-zero, else 0, so callers can `return log_error_errno(...)`. */
int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *fields, const char *format, ...) _printf_(7, 8);

#define log_full_errno(level, error, ...) \
        log_internal(level, error, __FILE__, __LINE__, __func__, NULL, __VA_ARGS__)
#define log_fields_errno(level, error, fields, ...) \
        log_internal(level, error, __FILE__, __LINE__, __func__, fields, __VA_ARGS__)

#define log_debug(...) log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...) log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...) log_full_errno(LOG_ERR, 0, __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, error, __VA_ARGS__)
#define log_error_errno(error, ...) log_full_errno(LOG_ERR, error, __VA_ARGS__)
