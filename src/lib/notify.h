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

/* The sending side, for the workers. libsystemd's sd_notify() sends with a blocking socket: when
 * the receiver's queue is full (net.unix.max_dgram_qlen datagrams, often 10) it waits until the
 * receiver reads. The workers' receiver is the supervisor; a stopped or starved supervisor must
 * never freeze a worker's loop (the gateway must keep answering 503 meanwhile), so the workers
 * send through a non-blocking socket connected to $NOTIFY_SOCKET instead, and a full queue
 * drops the datagram (-EAGAIN). The kernel attaches the sender's credentials, which the
 * supervisor checks (SO_PASSCRED). */

/* Opens a non-blocking datagram socket connected to $NOTIFY_SOCKET (a path, or "@name" in the
 * abstract namespace). *ret_fd = -1 and 0 when the variable is unset; -errno on failure. */
int notify_open(int *ret_fd);
/* Sends one datagram; -EAGAIN when the receiver's queue is full, -errno otherwise. */
int notify_send(int fd, const char *message);
