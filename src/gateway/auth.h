/* Bearer-token authentication for the gateway: where the token comes from, checking a request's
 * Authorization header in constant time, and the per-client limiter on failed attempts. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "ratelimit.h"

#define GATEWAY_TOKEN_MIN 16
#define GATEWAY_TOKEN_MAX 1024
/* systemd credential read when present (LoadCredential=gateway-token:/path, see systemd.exec(5)). */
#define GATEWAY_CREDENTIAL_NAME "gateway-token"
/* Created in $CONCLAVE_HOME, mode 0600, when no token is configured and the gateway is not open. */
#define GATEWAY_GENERATED_TOKEN_FILE "gateway.token"
/* Failed authentications a client address may make per minute before it gets 429s. */
#define AUTH_FAILURES_PER_MINUTE 10

enum gateway_token_source {
        GATEWAY_TOKEN_NONE,        /* open: loopback listener with [gateway] open = true */
        GATEWAY_TOKEN_ENVIRONMENT, /* $CONCLAVE_WEB_TOKEN */
        GATEWAY_TOKEN_CREDENTIAL,  /* $CREDENTIALS_DIRECTORY/gateway-token, or token_file = "credential:NAME" */
        GATEWAY_TOKEN_FILE,        /* [gateway] token_file */
        GATEWAY_TOKEN_CONFIG,      /* [gateway] token */
        GATEWAY_TOKEN_GENERATED,   /* $CONCLAVE_HOME/gateway.token */
};

struct gateway_auth {
        enum gateway_token_source source;
        char *path;   /* the file the token was read from or written to; NULL for NONE, ENVIRONMENT, CONFIG */
        bool created; /* GENERATED: this call created the file */
        uint8_t digest[32]; /* SHA-256 of the token; the token itself is not kept */
};

/* Finds the token, first match wins: $CONCLAVE_WEB_TOKEN, the systemd credential gateway-token,
 * [gateway] token_file (relative to $CONCLAVE_HOME; "credential:NAME" names a credential; must
 * not be accessible by group or others), [gateway] token. With none: open when `loopback` (the
 * listener really accepts loopback connections only) and [gateway] open = true; otherwise the
 * token in $CONCLAVE_HOME/gateway.token, created with a random token on first use.
 * A token is its file's content without one trailing newline: 16-1024 printable ASCII
 * characters, no spaces. On failure returns -errno and puts a message naming the file and the
 * fix into error (never the token). On success *ret must be released with gateway_auth_done(). */
int gateway_auth_load(const struct config *c, bool loopback, struct gateway_auth *ret, char *error,
                      size_t error_size);
void gateway_auth_done(struct gateway_auth *a);

/* "$CONCLAVE_WEB_TOKEN", "[gateway] token_file", … */
const char *gateway_token_source_to_string(enum gateway_token_source s);
/* One line for the journal, e.g. "token from [gateway] token_file /home/u/.conclave/web.token". */
void gateway_auth_describe(const struct gateway_auth *a, char *buf, size_t size);

enum auth_result {
        AUTH_OK,
        AUTH_MISSING, /* no Authorization header, or not the Bearer scheme: 401 without error code */
        AUTH_INVALID, /* Bearer with a wrong or empty token: 401 error="invalid_token" */
};

/* Checks an Authorization header value (NULL: absent) against the token. Takes the same time
 * whatever part of a wrong token matches and whatever the real token's length. */
enum auth_result auth_check(const struct gateway_auth *a, const char *authorization_header);

/* Failed attempts per client address: after AUTH_FAILURES_PER_MINUTE failures in a row the
 * address is refused (429) until the rate drops back. Only AUTH_INVALID should be recorded: a
 * request without a token is not a guess. */
struct auth_limiter {
        struct ratelimit *failures;
        uint64_t n_failures; /* failures recorded */
        uint64_t n_refused;  /* requests refused because their address failed too often */
};

int auth_limiter_init(struct auth_limiter *l);
void auth_limiter_done(struct auth_limiter *l);
/* Before checking credentials: 0 to go on, else refuse with 429 and this Retry-After. */
unsigned auth_limiter_check(struct auth_limiter *l, const char *client, uint64_t now_usec);
/* After a check failed with AUTH_INVALID. */
void auth_limiter_failed(struct auth_limiter *l, const char *client, uint64_t now_usec);
