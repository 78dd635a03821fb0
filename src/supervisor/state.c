/* Writes daemon_state.json (see state.h). */

#include <string.h>
#include <time.h>

#include "fileio.h"
#include "log.h"
#include "proto.h"
#include "state.h"
#include "supervisor.h"
#include "timeutil.h"

int state_write(struct supervisor *s) {
        _cleanup_json_ struct json_object *o = supervisor_status_json(s);
        char ts[40];
        const char *text;
        int r;

        if (!o)
                return -ENOMEM;
        json_object_object_add(o, "format_version", json_object_new_int(DAEMON_STATE_VERSION));
        json_object_object_add(o, "heartbeat",
                               json_object_new_string(format_timestamp_iso(ts, sizeof ts, now_usec(CLOCK_REALTIME))));
        text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED);
        r = write_file_atomic(s->state_path, text, strlen(text), 0600);
        if (r < 0)
                log_warning_errno(r, "cannot write %s", s->state_path);
        return r;
}
