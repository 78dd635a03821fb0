/* One HTTP request as the gateway's handlers see it: what arrived (method, path, client, body)
 * and how to answer — at once, or later from a callback, in which case http.c keeps the
 * connection suspended until the answer is there. */
#pragma once

#include <json-c/json.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "ratelimit.h"

#define HTTP_ADDRESS_MAX (INET6_ADDRSTRLEN + 32)
/* Request paths are client data; only this much of one goes into a log entry. */
#define HTTP_LOG_PATH_MAX 256

struct http_server;
struct proto_call;
struct sse_client;

struct http_request {
        struct http_server *server;
        struct MHD_Connection *con;
        uint64_t start_usec;
        bool headers_seen;
        bool dispatched;   /* handed to the API; its answer may come later */
        bool suspended;    /* MHD is not processing the connection while we wait */
        bool done;         /* MHD finished with it; only pending callbacks keep it alive */
        bool auth_failed;
        unsigned status;   /* 0 until a response is queued */
        char method[16];
        char path[HTTP_LOG_PATH_MAX];
        char client[HTTP_ADDRESS_MAX]; /* the peer's address, without port */
        char client_key[RATELIMIT_CLIENT_KEY_SIZE]; /* what limits count by: IPv6 per /64 */
        bool client_loopback;

        char *body;
        size_t body_len, body_size; /* bytes received; allocated */
        bool body_too_large; /* the rest is read and dropped; answered 413 at its end */

        /* An answer waiting to be queued when MHD calls us again. */
        struct MHD_Response *response;
        unsigned response_status;

        struct proto_call *call;    /* an upstream call in flight */
        struct sse_client *sse;     /* this request is an event stream */
};

/* Sets the answer. From inside the handler it is queued on return; from a callback, the
 * connection is resumed and the answer queued. */
void http_request_respond(struct http_request *req, unsigned status, struct MHD_Response *response);
void http_request_respond_json(struct http_request *req, unsigned status, struct json_object *body);
void http_request_respond_error(struct http_request *req, unsigned status, const char *code, const char *fmt, ...)
        _printf_(4, 5);
/* A header value of the request (case-insensitive name), or NULL. */
const char *http_request_header(struct http_request *req, const char *name);
/* A query argument of the request, or NULL. */
const char *http_request_query(struct http_request *req, const char *name);
/* For the event stream: resumes a suspended connection so MHD asks for more data. */
void http_request_wake(struct http_request *req);
/* Parks the connection (MHD stops processing it) until an answer or wake. */
void http_request_suspend(struct http_request *req);
/* Adds the headers every JSON answer carries. */
int http_response_add_common_headers(struct MHD_Response *response, const char *content_type);
