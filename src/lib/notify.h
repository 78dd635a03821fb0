/* The sd_notify(3) datagram protocol, as read by the supervisor from its workers: newline-
 * separated KEY=VALUE assignments (READY=1, STATUS=…, WATCHDOG=1, STOPPING=1, RELOADING=1,
 * EXTEND_TIMEOUT_USEC=…, ERRNO=…). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NOTIFY_DATAGRAM_MAX 4096
#define NOTIFY_STATUS_MAX 256

struct notify_message {
        bool ready;
        bool watchdog;
        bool watchdog_trigger; /* WATCHDOG=trigger: the worker asks to be treated as hung */
        bool stopping;
        bool reloading;
        bool has_status;
        char status[NOTIFY_STATUS_MAX];
        uint64_t extend_timeout_usec; /* 0 if absent */
        int error;                    /* ERRNO=, 0 if absent */
        unsigned n_unknown;           /* assignments we do not understand (ignored) */
};

/* Parses one datagram of `len` bytes (not necessarily NUL-terminated). -EBADMSG when the
 * datagram is not a list of KEY=VALUE lines; the message is then to be ignored whole. */
int notify_parse(const char *data, size_t len, struct notify_message *ret);
