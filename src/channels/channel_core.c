/* One channel and the services channel.h offers its driver: settings and their checks,
 * credentials, state, inbound messages, persisted driver state, logging. */

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "channel_internal.h"
#include "channel_policy.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "paths.h"
#include "proto.h"
#include "text_clean.h"
#include "timeutil.h"

#define SECRET_FILE_MAX (64u * 1024u)

struct channel_check {
        struct channel *channel;
        size_t n_errors;
};

static const char *const state_names[_CHANNEL_STATE_MAX] = {
        [CHANNEL_CONNECTING] = "connecting",
        [CHANNEL_UP] = "up",
        [CHANNEL_DEGRADED] = "degraded",
        [CHANNEL_DOWN] = "down",
};

const char *channel_state_to_string(enum channel_state st) {
        return (size_t) st < ELEMENTSOF(state_names) ? state_names[st] : "unknown";
}

const char *channel_name(const struct channel *ch) {
        return ch->name;
}

const struct channel_kind *channel_kind_of(const struct channel *ch) {
        return ch->kind;
}

const char *channel_group(const struct channel *ch) {
        return ch->config ? ch->config->group : NULL;
}

void *channel_driver_data(struct channel *ch) {
        return ch->data;
}

sd_event *channel_event(struct channel *ch) {
        return ch->set->event;
}

struct http_engine *channel_http(struct channel *ch) {
        return ch->set->http;
}

int channel_log_internal(struct channel *ch, int level, int error, const char *file, int line, const char *func,
                         const char *format, ...) {
        char fields[256], msg[1024];
        va_list ap;

        va_start(ap, format);
        vsnprintf(msg, sizeof msg, format, ap);
        va_end(ap);
        snprintf(fields, sizeof fields, "CONCLAVE_CHANNEL=%s\nCONCLAVE_CHANNEL_KIND=%s", ch->name,
                 ch->kind ? ch->kind->name : (ch->config && ch->config->kind ? ch->config->kind : "unknown"));
        return log_internal(level, error, file, line, func, fields, "channel %s: %s", ch->name, msg);
}

/* --- settings ------------------------------------------------------------------------------ */

static const struct config_setting *setting_find(const struct channel *ch, const char *key) {
        for (size_t i = 0; ch->config && i < ch->config->n_settings; i++)
                if (streq(ch->config->settings[i].key, key))
                        return &ch->config->settings[i];
        return NULL;
}

const char *channel_setting(const struct channel *ch, const char *key) {
        const struct config_setting *s = setting_find(ch, key);
        return s ? s->value : NULL;
}

void channel_check_error(struct channel_check *chk, const char *key, const char *format, ...) {
        struct channel *ch = chk->channel;
        const struct config_setting *s = key ? setting_find(ch, key) : NULL;
        char msg[512], *text = NULL;
        va_list ap;

        va_start(ap, format);
        vsnprintf(msg, sizeof msg, format, ap);
        va_end(ap);
        if (asprintf(&text, "%s:%u: [channels.%s]%s%s: %s", ch->config_path ? ch->config_path : "config.toml",
                     s ? s->line : ch->config->line, ch->name, key ? " " : "", key ? key : "", msg) < 0)
                text = NULL;
        channel_log(ch, LOG_ERR, 0, "%s", text ? text : msg);
        if (chk->n_errors++ == 0 && text) {
                free(ch->config_error);
                ch->config_error = text;
                text = NULL;
        }
        free(text);
}

const char *channel_check_string(struct channel_check *chk, const char *key, bool required) {
        const char *v = channel_setting(chk->channel, key);

        if (!v && required)
                channel_check_error(chk, key, "missing; kind %s needs it (see docs/channels.md)", chk->channel->kind->name);
        return v;
}

int channel_check_uint(struct channel_check *chk, const char *key, uint64_t def, uint64_t min, uint64_t max,
                       uint64_t *ret) {
        const char *v = channel_setting(chk->channel, key);
        unsigned long long u;
        char *end;

        if (!v) {
                *ret = def;
                return 0;
        }
        errno = 0;
        u = strtoull(v, &end, 10);
        if (errno || end == v || *end || !isdigit((unsigned char) *v) || u < min || u > max) {
                channel_check_error(chk, key, "\"%s\" is not a whole number from %" PRIu64 " to %" PRIu64, v, min, max);
                *ret = def;
                return -EINVAL;
        }
        *ret = u;
        return 0;
}

int channel_check_bool(struct channel_check *chk, const char *key, bool def, bool *ret) {
        const char *v = channel_setting(chk->channel, key);

        *ret = def;
        if (!v)
                return 0;
        if (streq(v, "true") || streq(v, "false")) {
                *ret = streq(v, "true");
                return 0;
        }
        channel_check_error(chk, key, "\"%s\" is not true or false", v);
        return -EINVAL;
}

int channel_check_duration(struct channel_check *chk, const char *key, uint64_t def_usec, uint64_t min_usec,
                           uint64_t max_usec, uint64_t *ret) {
        const char *v = channel_setting(chk->channel, key);
        uint64_t u;

        *ret = def_usec;
        if (!v)
                return 0;
        if (parse_duration_usec(v, &u) < 0 || u < min_usec || u > max_usec) {
                char a[32], b[32];
                channel_check_error(chk, key, "\"%s\" is not a duration from %s to %s (e.g. \"500ms\", \"2s\", \"1min\")", v,
                                    format_timespan(a, sizeof a, min_usec), format_timespan(b, sizeof b, max_usec));
                return -EINVAL;
        }
        *ret = u;
        return 0;
}

/* --- credentials --------------------------------------------------------------------------- */

void channel_secret_free(char *secret) {
        if (!secret)
                return;
        explicit_bzero(secret, strlen(secret));
        free(secret);
}

static int read_secret(const char *path, char **ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        struct stat st;
        char *buf;
        ssize_t n;
        size_t len = 0;

        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if (st.st_mode & 077)
                return -EPERM;
        if ((size_t) st.st_size > SECRET_FILE_MAX)
                return -EFBIG;
        buf = malloc(SECRET_FILE_MAX + 1);
        if (!buf)
                return -ENOMEM;
        while (len < SECRET_FILE_MAX && (n = read(fd, buf + len, SECRET_FILE_MAX - len)) != 0) {
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        int r = negative_errno();
                        explicit_bzero(buf, len);
                        free(buf);
                        return r;
                }
                len += (size_t) n;
        }
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
                len--;
        buf[len] = 0;
        if (memchr(buf, 0, len)) {
                explicit_bzero(buf, len);
                free(buf);
                return -EBADMSG;
        }
        *ret = buf;
        return 0;
}

int channel_credential(struct channel *ch, struct channel_check *chk, const char *key, char **ret) {
        const char *file = channel_setting(ch, key);
        _cleanup_free_ char *path = NULL, *home = NULL;
        size_t klen = strlen(key);
        int r;

        if (klen < 6 || !streq(key + klen - 5, "_file"))
                return -EINVAL;
        if (file) {
                if (file[0] == '/')
                        path = strdup(file);
                else if ((home = paths_home()))
                        path = path_join(home, file);
                if (!path)
                        return -ENOMEM;
        } else {
                const char *dir = getenv("CREDENTIALS_DIRECTORY");
                char name[256];
                if (!dir || !*dir)
                        return -ENOKEY;
                snprintf(name, sizeof name, "%s.%.*s", ch->name, (int) (klen - 5), key);
                path = path_join(dir, name);
                if (!path)
                        return -ENOMEM;
                if (access(path, F_OK) < 0)
                        return -ENOKEY;
        }
        r = read_secret(path, ret);
        if (r < 0 && chk) {
                if (r == -EPERM)
                        channel_check_error(chk, key, "%s is readable by group or others; run chmod 600 %s", path, path);
                else if (r == -ENOENT)
                        channel_check_error(chk, key, "%s does not exist; write the secret into it (mode 600)", path);
                else if (r == -EFBIG)
                        channel_check_error(chk, key, "%s is larger than %u bytes; it should hold one secret", path,
                                            SECRET_FILE_MAX);
                else
                        channel_check_error(chk, key, "cannot read %s: %s", path, strerror(-r));
        }
        return r;
}

/* --- state --------------------------------------------------------------------------------- */

enum channel_state channel_effective_state(const struct channel *ch, const char **ret_error) {
        if ((ch->state == CHANNEL_UP || ch->state == CHANNEL_DEGRADED) && *ch->inbound_problem) {
                *ret_error = ch->inbound_problem;
                return CHANNEL_DEGRADED;
        }
        *ret_error = *ch->error ? ch->error : NULL;
        return ch->state;
}

void channel_set_state(struct channel *ch, enum channel_state st, const char *error_format, ...) {
        char error[CHANNEL_ERROR_MAX] = "";
        bool changed;

        if (ch->stopped)
                return;
        if (error_format) {
                va_list ap;
                va_start(ap, error_format);
                vsnprintf(error, sizeof error, error_format, ap);
                va_end(ap);
        }
        changed = st != ch->state || !streq(error, ch->error);
        if (!changed)
                return;
        if (st != ch->state)
                ch->since_realtime = now_usec(CLOCK_REALTIME);
        ch->state = st;
        snprintf(ch->error, sizeof ch->error, "%s", error);
        channel_log(ch, st == CHANNEL_DOWN ? LOG_WARNING : st == CHANNEL_DEGRADED ? LOG_NOTICE : LOG_INFO, 0, "%s%s%s",
                    channel_state_to_string(st), *error ? ": " : "", error);
        channel_set_state_changed(ch->set);
        if (st == CHANNEL_UP || st == CHANNEL_DEGRADED)
                channel_kick(ch);
}

enum channel_state channel_get_state(const struct channel *ch) {
        return ch->state;
}

struct json_object *channel_status_json(const struct channel *ch) {
        struct json_object *o = json_object_new_object(), *stats;
        const char *error = NULL;
        enum channel_state st = channel_effective_state(ch, &error);
        char ts[40];

        if (!o)
                return NULL;
        json_object_object_add(o, "name", json_object_new_string(ch->name));
        json_object_object_add(o, "kind", json_object_new_string(ch->config && ch->config->kind ? ch->config->kind : "?"));
        json_object_object_add(o, "state", json_object_new_string(channel_state_to_string(st)));
        json_object_object_add(o, "error", error ? json_object_new_string(error) : NULL);
        json_object_object_add(o, "since", ch->since_realtime ? json_object_new_string(format_timestamp_iso(
                                                                        ts, sizeof ts, ch->since_realtime))
                                                              : NULL);
        stats = json_object_new_object();
        json_object_object_add(stats, "inbound", json_object_new_uint64(ch->n_inbound));
        json_object_object_add(stats, "denied", json_object_new_uint64(ch->n_denied));
        json_object_object_add(stats, "delivered", json_object_new_uint64(ch->n_delivered));
        json_object_object_add(stats, "failed", json_object_new_uint64(ch->n_failed));
        json_object_object_add(stats, "unconfirmed", json_object_new_uint64(ch->n_unconfirmed));
        json_object_object_add(stats, "retried", json_object_new_uint64(ch->n_retried));
        json_object_object_add(stats, "queued", json_object_new_uint64(channel_queue_length(ch)));
        json_object_object_add(o, "stats", stats);
        return o;
}

/* --- supervisor calls ---------------------------------------------------------------------- */

int channel_call(struct channel *ch, const char *op, struct json_object *args, proto_call_cb cb, void *userdata,
                 struct proto_call **ret) {
        if (!proto_link_is_open(ch->set->link))
                return -ENOTCONN;
        return proto_link_call(ch->set->link, op, args, CHANNEL_CALL_TIMEOUT_USEC, false, cb, userdata, ret);
}

int channel_reply_error(struct json_object *reply, int error, const char **ret_message) {
        static const struct {
                const char *code;
                int error;
        } map[] = {
                { "not_found", -ENOENT }, { "invalid_state", -EPERM }, { "forbidden", -EACCES },
                { "broken", -EBADMSG },   { "bad_request", -EINVAL },  { "not_owed", -EALREADY },
        };
        struct json_object *ok, *err = NULL, *v;
        const char *code = NULL;

        if (ret_message)
                *ret_message = NULL;
        if (!reply)
                return error < 0 ? error : -EIO;
        if (json_object_object_get_ex(reply, "ok", &ok) && json_object_get_boolean(ok))
                return 0;
        json_object_object_get_ex(reply, "error", &err);
        if (err && json_object_object_get_ex(err, "code", &v))
                code = json_object_get_string(v);
        if (ret_message && err && json_object_object_get_ex(err, "message", &v))
                *ret_message = json_object_get_string(v);
        for (size_t i = 0; i < ELEMENTSOF(map); i++)
                if (streq(code, map[i].code))
                        return map[i].error;
        return -EIO;
}

/* --- inbound ------------------------------------------------------------------------------- */

bool channel_user_allowed(const struct channel *ch, const char *user) {
        return channel_policy_allowed(ch->config, user);
}

static bool valid_message_id(const char *s, size_t max) {
        size_t n = strlen(s);

        if (n == 0 || n > max)
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char) *s) && !strchr("_.:@-", *s))
                        return false;
        return true;
}

static bool valid_user(const char *s) {
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > CHANNEL_USER_MAX)
                return false;
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return false;
        return true;
}

static void inbound_call_unlink(struct channel_inbound_call *ic) {
        struct channel *ch = ic->channel;

        if (ic->prev)
                ic->prev->next = ic->next;
        else
                ch->inbound_calls = ic->next;
        if (ic->next)
                ic->next->prev = ic->prev;
}

static void on_inbound_reply(struct json_object *reply, int error, bool more, void *userdata) {
        struct channel_inbound_call *ic = userdata;
        struct channel *ch = ic->channel;
        const char *message = NULL;
        int r = channel_reply_error(reply, error, &message);

        inbound_call_unlink(ic);
        if (r >= 0) {
                ch->n_inbound++;
                if (*ch->inbound_problem) {
                        *ch->inbound_problem = 0;
                        channel_set_state_changed(ch->set);
                }
        } else if (r == -ENOENT || r == -EPERM || r == -EBADMSG) {
                /* The group is missing, stopped or broken: every message will fail alike. */
                if (!streq(ch->inbound_problem, message ?: "")) {
                        snprintf(ch->inbound_problem, sizeof ch->inbound_problem, "%s", message ?: strerror(-r));
                        channel_log(ch, LOG_WARNING, 0, "inbound message refused: %s", ch->inbound_problem);
                        channel_set_state_changed(ch->set);
                }
        } else
                channel_log(ch, LOG_WARNING, r, "inbound message not stored: %s", message ?: strerror(-r));
        if (ic->done)
                ic->done(ch, r, ic->userdata);
        free(ic);
}

int channel_report_inbound(struct channel *ch, const struct channel_inbound *m, channel_inbound_done_fn done,
                           void *userdata) {
        _cleanup_json_ struct json_object *args = NULL;
        _cleanup_free_ char *text = NULL;
        struct channel_inbound_call *ic;
        char id[64];
        int r;

        if (ch->stopped)
                return -ESTALE;
        if (!valid_user(m->user) || (m->message_id && !valid_message_id(m->message_id, CHANNEL_MESSAGE_ID_MAX)) ||
            (m->thread && !valid_message_id(m->thread, CHANNEL_THREAD_MAX)) || !m->text)
                return -EINVAL;
        if (!channel_user_allowed(ch, m->user)) {
                char fields[256];
                /* Who and where, never what they wrote. */
                ch->n_denied++;
                snprintf(fields, sizeof fields, "CONCLAVE_CHANNEL=%s\nCONCLAVE_CHANNEL_USER=%s", ch->name, m->user);
                log_fields_errno(LOG_WARNING, 0, fields,
                                 "channel %s: sender \"%s\" is not in allowed_users; message dropped (not stored)",
                                 ch->name, m->user);
                return -EACCES;
        }
        if (!proto_link_is_open(ch->set->link))
                return -ENOTCONN;
        r = text_clean(m->text, strlen(m->text), CHANNEL_TEXT_MAX, &text);
        if (r < 0)
                return r;
        if (!*text)
                return -EINVAL;
        if (!m->message_id) {
                /* Unique across restarts: the time, our pid and a counter. */
                snprintf(id, sizeof id, "c%" PRIu64 ".%d.%" PRIu64, now_usec(CLOCK_REALTIME) / 1000, (int) getpid(),
                         ++ch->set->inbound_counter);
        }
        args = json_object_new_object();
        ic = calloc(1, sizeof *ic);
        if (!args || !ic) {
                free(ic);
                return -ENOMEM;
        }
        json_object_object_add(args, "channel", json_object_new_string(ch->name));
        json_object_object_add(args, "user", json_object_new_string(m->user));
        if (m->display_name && valid_user(m->display_name))
                json_object_object_add(args, "display_name", json_object_new_string(m->display_name));
        json_object_object_add(args, "text", json_object_new_string(text));
        json_object_object_add(args, "message_id", json_object_new_string(m->message_id ? m->message_id : id));
        if (m->reply_to && valid_message_id(m->reply_to, CHANNEL_MESSAGE_ID_MAX))
                json_object_object_add(args, "reply_to", json_object_new_string(m->reply_to));
        if (m->thread)
                json_object_object_add(args, "thread", json_object_new_string(m->thread));
        *ic = (struct channel_inbound_call){ .channel = ch, .done = done, .userdata = userdata };
        r = channel_call(ch, "channel.inbound", args, on_inbound_reply, ic, &ic->call);
        if (r < 0) {
                free(ic);
                return r;
        }
        ic->next = ch->inbound_calls;
        if (ic->next)
                ic->next->prev = ic;
        ch->inbound_calls = ic;
        return 0;
}

/* --- persisted driver state ---------------------------------------------------------------- */

const char *channel_store_get(const struct channel *ch, const char *key) {
        struct json_object *v;

        if (!ch->store || !json_object_object_get_ex(ch->store, key, &v) || !json_object_is_type(v, json_type_string))
                return NULL;
        return json_object_get_string(v);
}

static void on_store_set(struct json_object *reply, int error, bool more, void *userdata) {
        const char *message = NULL;
        int r = channel_reply_error(reply, error, &message);

        if (r < 0)
                log_warning_errno(r, "the supervisor did not store a channel's state: %s", message ?: strerror(-r));
}

int channel_store_set(struct channel *ch, const char *key, const char *value) {
        _cleanup_json_ struct json_object *args = json_object_new_object();
        int r;

        if (!key || !*key || strlen(key) > CHANNEL_STORE_KEY_MAX || (value && strlen(value) > CHANNEL_STORE_VALUE_MAX))
                return -E2BIG;
        if (!ch->store && !(ch->store = json_object_new_object()))
                return -ENOMEM;
        if (!args)
                return -ENOMEM;
        if (value && !json_object_object_get_ex(ch->store, key, NULL) &&
            json_object_object_length(ch->store) >= CHANNEL_STORE_KEYS_MAX)
                return -E2BIG;
        if (value)
                json_object_object_add(ch->store, key, json_object_new_string(value));
        else
                json_object_object_del(ch->store, key);
        if (!proto_link_is_open(ch->set->link))
                return 0; /* standalone: kept for this run only */
        json_object_object_add(args, "channel", json_object_new_string(ch->name));
        json_object_object_add(args, "key", json_object_new_string(key));
        json_object_object_add(args, "value", value ? json_object_new_string(value) : NULL);
        /* No callback data: the answer only matters when it is an error. */
        r = proto_link_call(ch->set->link, "channel.store.set", args, CHANNEL_CALL_TIMEOUT_USEC, false, on_store_set,
                            NULL, NULL);
        return r;
}

/* --- life cycle ---------------------------------------------------------------------------- */

char *channel_fingerprint(const struct config_channel *cc) {
        _cleanup_json_ struct json_object *o = json_object_new_object(), *allowed = json_object_new_array();

        if (!o || !allowed)
                return NULL;
        json_object_object_add(o, "kind", cc->kind ? json_object_new_string(cc->kind) : NULL);
        json_object_object_add(o, "group", cc->group ? json_object_new_string(cc->group) : NULL);
        for (size_t i = 0; i < cc->n_allowed_users; i++)
                json_object_array_add(allowed, json_object_new_string(cc->allowed_users[i]));
        json_object_object_add(o, "allowed_users", json_object_get(allowed));
        for (size_t i = 0; i < cc->n_settings; i++)
                json_object_object_add(o, cc->settings[i].key, json_object_new_string(cc->settings[i].value));
        return strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
}

static void warn_unknown_settings(struct channel *ch) {
        for (size_t i = 0; i < ch->config->n_settings; i++) {
                const char *key = ch->config->settings[i].key;
                bool known = false;
                for (const char *const *k = ch->kind->settings; k && *k && !known; k++)
                        known = streq(*k, key);
                if (!known)
                        channel_log(ch, LOG_WARNING, 0, "%s:%u: [channels.%s] %s: not used by kind %s (ignored)",
                                    ch->config_path, ch->config->settings[i].line, ch->name, key, ch->kind->name);
        }
}

static void config_channel_free(struct config_channel *cc) {
        if (!cc)
                return;
        free(cc->name);
        free(cc->kind);
        free(cc->group);
        for (size_t i = 0; i < cc->n_allowed_users; i++)
                free(cc->allowed_users[i]);
        free(cc->allowed_users);
        for (size_t i = 0; i < cc->n_settings; i++) {
                free(cc->settings[i].key);
                free(cc->settings[i].value);
        }
        free(cc->settings);
        free(cc);
}

/* The channel's own copy of its section: what the driver reads stays valid across reloads. */
static struct config_channel *config_channel_copy(const struct config_channel *from) {
        struct config_channel *cc = calloc(1, sizeof *cc);
        bool ok;

        if (!cc)
                return NULL;
        cc->name = strdup(from->name);
        cc->kind = from->kind ? strdup(from->kind) : NULL;
        cc->group = from->group ? strdup(from->group) : NULL;
        cc->line = from->line;
        cc->mention_reply_required = from->mention_reply_required;
        cc->allowed_users = calloc(from->n_allowed_users + 1, sizeof *cc->allowed_users);
        cc->settings = calloc(from->n_settings + 1, sizeof *cc->settings);
        ok = cc->name && (!from->kind || cc->kind) && (!from->group || cc->group) && cc->allowed_users && cc->settings;
        for (size_t i = 0; ok && i < from->n_allowed_users; i++) {
                ok = (cc->allowed_users[i] = strdup(from->allowed_users[i])) != NULL;
                cc->n_allowed_users += ok;
        }
        for (size_t i = 0; ok && i < from->n_settings; i++) {
                cc->settings[i] = (struct config_setting){ .key = strdup(from->settings[i].key),
                                                           .value = strdup(from->settings[i].value),
                                                           .line = from->settings[i].line };
                cc->n_settings++;
                ok = cc->settings[i].key && cc->settings[i].value;
        }
        if (!ok) {
                config_channel_free(cc);
                return NULL;
        }
        return cc;
}

struct channel *channel_new(struct channel_set *set, const struct config *c, const struct config_channel *cc) {
        struct channel *ch = calloc(1, sizeof *ch);

        if (!ch)
                return NULL;
        ch->set = set;
        ch->name = strdup(cc->name);
        ch->fingerprint = channel_fingerprint(cc);
        ch->own_config = config_channel_copy(cc);
        ch->config = ch->own_config;
        ch->config_path_copy = c->path ? strdup(c->path) : NULL;
        ch->config_path = ch->config_path_copy;
        cc = ch->config;
        ch->kind = cc && cc->kind ? channel_kind_find(cc->kind) : NULL;
        ch->state = CHANNEL_CONNECTING;
        ch->since_realtime = now_usec(CLOCK_REALTIME);
        if (!ch->name || !ch->fingerprint || !ch->own_config || (c->path && !ch->config_path_copy) ||
            (ch->kind && ch->kind->size && !(ch->data = calloc(1, ch->kind->size)))) {
                config_channel_free(ch->own_config);
                free(ch->config_path_copy);
                free(ch->name);
                free(ch->fingerprint);
                free(ch);
                return NULL;
        }
        if (!ch->kind) {
                ch->state = CHANNEL_DOWN;
                snprintf(ch->error, sizeof ch->error, "kind \"%s\" is not implemented in this build of Conclave",
                         cc->kind ? cc->kind : "");
                channel_log(ch, LOG_WARNING, 0, "down: %s", ch->error);
                return ch;
        }
        warn_unknown_settings(ch);
        {
                struct channel_check chk = { .channel = ch };
                int r = ch->kind->configure ? ch->kind->configure(ch, &chk) : 0;
                ch->configured = true;
                if (r >= 0 && chk.n_errors > 0)
                        r = -EINVAL;
                if (r >= 0 && !cc->group) {
                        channel_check_error(&chk, "group", "missing: the group whose actors talk through this channel");
                        r = -EINVAL;
                }
                if (r < 0) {
                        ch->state = CHANNEL_DOWN;
                        snprintf(ch->error, sizeof ch->error, "configuration: %s",
                                 ch->config_error ? ch->config_error : strerror(-r));
                        return ch;
                }
        }
        if (cc->n_allowed_users == 0)
                channel_log(ch, LOG_WARNING, 0, "allowed_users is empty: every sender is refused; list the platform "
                            "user ids, or [\"*\"] to allow everyone");
        return ch;
}

static void on_store_loaded(struct json_object *reply, int error, bool more, void *userdata) {
        struct channel *ch = userdata;
        struct json_object *result, *values;
        const char *message = NULL;
        int r = channel_reply_error(reply, error, &message);

        ch->store_call = NULL;
        if (r >= 0 && json_object_object_get_ex(reply, "result", &result) &&
            json_object_object_get_ex(result, "values", &values) && json_object_is_type(values, json_type_object)) {
                json_object_put(ch->store);
                ch->store = json_object_get(values);
        } else
                channel_log(ch, LOG_WARNING, r, "cannot load its saved state; starting without it: %s",
                            message ?: strerror(-r));
        channel_start(ch);
}

void channel_start(struct channel *ch) {
        int r;

        if (!ch->kind || ch->state == CHANNEL_DOWN || ch->started || ch->stopped)
                return;
        if (!ch->store && proto_link_is_open(ch->set->link) && !ch->store_call) {
                _cleanup_json_ struct json_object *args = json_object_new_object();
                json_object_object_add(args, "channel", json_object_new_string(ch->name));
                if (channel_call(ch, "channel.store.get", args, on_store_loaded, ch, &ch->store_call) >= 0)
                        return;
        }
        if (ch->store_call)
                return;
        ch->started = true;
        channel_delivery_attach(ch);
        r = ch->kind->start ? ch->kind->start(ch) : 0;
        if (r < 0)
                channel_set_state(ch, CHANNEL_DOWN, "cannot start: %s", strerror(-r));
        channel_set_state_changed(ch->set);
}

void channel_free(struct channel *ch) {
        if (!ch)
                return;
        proto_call_cancel(ch->store_call);
        while (ch->inbound_calls) {
                struct channel_inbound_call *ic = ch->inbound_calls;
                inbound_call_unlink(ic);
                proto_call_cancel(ic->call);
                free(ic);
        }
        /* Deliveries first: their in-flight state must not reach a stopped driver. */
        channel_delivery_detach(ch);
        if (ch->kind && ch->configured && ch->kind->stop)
                ch->kind->stop(ch);
        ch->stopped = true;
        sd_event_source_disable_unref(ch->kick);
        sd_event_source_disable_unref(ch->timer);
        json_object_put(ch->store);
        free(ch->data);
        free(ch->config_error);
        free(ch->fingerprint);
        free(ch->name);
        config_channel_free(ch->own_config);
        free(ch->config_path_copy);
        free(ch);
}
