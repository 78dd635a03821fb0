/* Maps a method and a (decoded) path to one of the gateway's endpoints and its parameters.
 * Pure: no I/O, so it is unit tested and fuzzed on its own. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define ROUTE_ID_MAX 64 /* group and actor ids, channel names */
#define ROUTE_EVENT_MAX 26 /* an event id (ULID) or a seq number */

enum route {
        ROUTE_NONE,            /* no such path: 404 */
        ROUTE_READYZ,
        ROUTE_STATUS,
        ROUTE_GROUPS,          /* GET list, POST create */
        ROUTE_GROUP,           /* GET show */
        ROUTE_GROUP_ACTION,    /* POST start|stop|pause|resume */
        ROUTE_ACTORS,          /* GET list */
        ROUTE_ACTOR,           /* GET show */
        ROUTE_ACTOR_RESTART,   /* POST */
        ROUTE_INBOX,           /* GET */
        ROUTE_INBOX_READ,      /* POST: mark read */
        ROUTE_ACK,             /* POST */
        ROUTE_MESSAGES,        /* POST send */
        ROUTE_REPLY,           /* POST reply to {event} */
        ROUTE_EVENTS,          /* GET ?after=&limit= */
        ROUTE_EVENTS_STREAM,   /* GET, Server-Sent Events */
        ROUTE_WEBHOOK,         /* POST /webhook/{channel} */
        ROUTE_UI,              /* GET the web UI's files */
};

struct route_match {
        enum route route;
        bool method_ok;      /* false: the path exists, the method does not (405 with allow) */
        const char *allow;   /* "GET", "POST", "GET, POST" */
        char group[ROUTE_ID_MAX + 1];
        char actor[ROUTE_ID_MAX + 1];
        char event[ROUTE_EVENT_MAX + 1];
        char action[16];     /* start | stop | pause | resume */
        char channel[ROUTE_ID_MAX + 1];
        char file[64];       /* for ROUTE_UI: "index.html", "app.js", … */
};

/* Fills *m; m->route is ROUTE_NONE for an unknown path (or an invalid id in it). */
void route_match(const char *method, const char *path, struct route_match *m);
/* [A-Za-z0-9_-]{1,64}: the ids the supervisor accepts. */
bool route_valid_id(const char *s, size_t len);
const char *route_name(enum route r);
