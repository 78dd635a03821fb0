/* Control operations about the daemon itself: ping, status, reload. */
#include <errno.h>

#include "control_server.h"
#include "proto.h"
#include "supervisor.h"

static int op_ping(struct supervisor *s, struct control_request *req, struct json_object *args) {
        _cleanup_json_ struct json_object *r = json_object_new_string("pong");
        control_request_reply(req, r);
        return 0;
}

static int op_status(struct supervisor *s, struct control_request *req, struct json_object *args) {
        _cleanup_json_ struct json_object *r = supervisor_status_json(s);
        if (!r)
                return -ENOMEM;
        control_request_reply(req, r);
        return 0;
}

static int op_reload(struct supervisor *s, struct control_request *req, struct json_object *args) {
        _cleanup_json_ struct json_object *r = NULL;
        int k = supervisor_reload(s);

        if (k == -EINVAL) {
                control_request_error(req, "invalid_config",
                                      "the configuration has errors; the running one was kept "
                                      "(see `conclave doctor` or the journal)");
                return 0;
        }
        if (k == -EBUSY) {
                control_request_error(req, "busy", "a reload or stop is already in progress");
                return 0;
        }
        if (k < 0)
                return k;
        r = json_object_new_string("reloading");
        control_request_reply(req, r);
        return 0;
}

const struct control_op control_ops_core[] = {
        { "ping", op_ping },
        { "status", op_status },
        { "reload", op_reload },
        { NULL, NULL },
};
