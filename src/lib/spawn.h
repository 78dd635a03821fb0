/* What every child the supervisor starts needs before exec: default signal dispositions and an
 * empty mask (the parent blocks signals for sd-event), its own process group (a terminal's
 * Ctrl-C reaches only the supervisor, which stops children in order), and death with its
 * parent. Call in the child between fork() and exec(). */
#pragma once

void spawn_child_reset(void);
