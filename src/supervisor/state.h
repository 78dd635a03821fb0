/* daemon_state.json: the heartbeat file that tells operators (and `conclave status` when the
 * control socket is unreachable) what the daemon was doing, rewritten atomically. */
#pragma once

struct supervisor;

#include "formats.h" /* DAEMON_STATE_VERSION */

int state_write(struct supervisor *s);
