/* The supervisor's private sd_notify socket: workers send READY=1/WATCHDOG=1/STATUS= to it
 * exactly as they would to systemd; the kernel-attached SCM_CREDENTIALS say who sent it. */
#pragma once

#include <systemd/sd-event.h>

struct supervisor;
struct notify_server;

int notify_server_new(struct supervisor *s, const char *path, struct notify_server **ret);
struct notify_server *notify_server_free(struct notify_server *n);
