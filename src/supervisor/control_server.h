/* The control socket the CLI talks to: $XDG_RUNTIME_DIR/conclave/control.sock, mode 0600,
 * only peers with our uid (SO_PEERCRED). Newline-delimited JSON requests and replies. */
#pragma once

struct supervisor;
struct control_server;

int control_server_new(struct supervisor *s, const char *path, struct control_server **ret);
struct control_server *control_server_free(struct control_server *c);
