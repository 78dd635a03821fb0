/* Control operations about LLM providers (docs/control-protocol.md):
 *   provider.check {provider?}  live checks by conclave-channels (provider_check.h): reachable,
 *                               key accepted, model available; one object per provider. */
#include <errno.h>
#include <string.h>

#include "control_server.h"
#include "macro.h"
#include "proto.h"
#include "supervisor.h"

/* Checks make one small request each, in parallel, bounded by 10 s (provider_check.h). */
#define PROVIDER_CHECK_CALL_TIMEOUT_USEC (20 * USEC_PER_SEC)

static void on_checked(struct json_object *reply, int error, bool more, void *userdata) {
        struct control_request *req = userdata;
        struct json_object *v, *err = NULL;

        if (!reply) {
                control_request_error(req, error == -ETIMEDOUT ? "timeout" : "unavailable",
                                      "conclave-channels did not answer the provider checks (%s)",
                                      strerror(error < 0 ? -error : EIO));
                return;
        }
        if (json_object_object_get_ex(reply, "ok", &v) && json_object_get_boolean(v) &&
            json_object_object_get_ex(reply, "result", &v)) {
                control_request_reply(req, v);
                return;
        }
        json_object_object_get_ex(reply, "error", &err);
        v = err ? json_object_object_get(err, "code") : NULL;
        control_request_error(req, v ? json_object_get_string(v) : "internal", "%s",
                              err && json_object_object_get(err, "message")
                                      ? json_object_get_string(json_object_object_get(err, "message"))
                                      : "the provider checks failed");
}

static int op_provider_check(struct supervisor *s, struct control_request *req, struct json_object *args) {
        struct worker_proc *w = &s->workers[WORKER_CHANNELS];
        _cleanup_json_ struct json_object *fwd = json_object_new_object();
        struct json_object *v;
        int r;

        if (!fwd)
                return -ENOMEM;
        if (w->state != WORKER_RUNNING || !proto_link_is_open(w->link)) {
                control_request_error(req, "unavailable", "conclave-channels is %s; the checks run there",
                                      worker_state_to_string(w->state));
                return 0;
        }
        if (args && json_object_object_get_ex(args, "provider", &v) && json_object_is_type(v, json_type_string))
                json_object_object_add(fwd, "provider", json_object_get(v));
        r = proto_link_call(w->link, "provider.check", fwd, PROVIDER_CHECK_CALL_TIMEOUT_USEC, false, on_checked, req, NULL);
        if (r < 0)
                control_request_error(req, "internal", "cannot ask conclave-channels: %s", strerror(-r));
        return 0;
}

const struct control_op control_ops_llm[] = {
        { "provider.check", op_provider_check },
        { NULL, NULL },
};
