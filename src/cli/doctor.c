/* `conclave doctor`: every problem with the configuration, files, permissions and unit
 * installation, each with where it is and how to fix it. Exit 1 when anything is critical. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"
#include "fileio.h"
#include "formats.h"
#include "control.h"
#include "macro.h"
#include "paths.h"
#include "proto.h"
#include "provider_check.h"

struct report {
        bool json;
        struct json_object *findings;
        unsigned errors, warnings;
};

static void finding(struct report *r, const char *severity, const char *check, const char *file,
                    unsigned line, const char *fmt, ...) _printf_(6, 7);
static void finding(struct report *r, const char *severity, const char *check, const char *file,
                    unsigned line, const char *fmt, ...) {
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (streq(severity, "error"))
                r->errors++;
        else if (streq(severity, "warning"))
                r->warnings++;
        if (r->json) {
                struct json_object *o = json_object_new_object();
                json_object_object_add(o, "severity", json_object_new_string(severity));
                json_object_object_add(o, "check", json_object_new_string(check));
                json_object_object_add(o, "file", file ? json_object_new_string(file) : NULL);
                json_object_object_add(o, "line", line ? json_object_new_int((int) line) : NULL);
                json_object_object_add(o, "message", json_object_new_string(msg));
                json_object_array_add(r->findings, o);
        } else
                printf("%-7s %-8s %s\n", severity, check, msg);
}

/* A secret file must exist, be a regular file and be readable by its owner only. */
static void check_secret_file(struct report *r, const struct config *c, const char *section,
                              const char *key, const char *path, unsigned line) {
        _cleanup_free_ char *home = paths_home(), *full = NULL;
        struct stat st;

        if (!path)
                return;
        if (strncmp(path, "credential:", 11) == 0)
                return; /* resolved from $CREDENTIALS_DIRECTORY by systemd at run time */
        full = path[0] == '/' ? strdup(path) : path_join(home ? home : ".", path);
        if (!full)
                return;
        if (stat(full, &st) < 0) {
                finding(r, "error", "secrets", c->path, line, "[%s] %s: %s: %s; create it (mode 0600) or fix the path",
                        section, key, full, strerror(errno));
                return;
        }
        if (!S_ISREG(st.st_mode))
                finding(r, "error", "secrets", c->path, line, "[%s] %s: %s is not a regular file", section, key, full);
        else if (st.st_mode & 0077)
                finding(r, "error", "secrets", c->path, line,
                        "[%s] %s: %s is readable by group or others (mode %04o); fix: chmod 600 %s",
                        section, key, full, (unsigned) (st.st_mode & 07777), full);
        else if (st.st_uid != getuid())
                finding(r, "warning", "secrets", c->path, line, "[%s] %s: %s is owned by uid %u, not you",
                        section, key, full, (unsigned) st.st_uid);
        else
                finding(r, "ok", "secrets", c->path, line, "[%s] %s: %s is private", section, key, full);
}

static void check_config(struct report *r, const char *path, struct config **ret) {
        struct config *c = NULL;
        struct stat st;
        int k;

        k = config_load(path, true, &c, NULL);
        if (k < 0) {
                finding(r, "error", "config", path, 0, "cannot read %s: %s%s", path, strerror(-k),
                        k == -EFBIG ? " (larger than 64 KiB)" : k == -EBADMSG ? " (contains a NUL byte)" : "");
                (void) config_parse_text(path, NULL, ret);
                return;
        }
        if (stat(path, &st) < 0)
                finding(r, "ok", "config", path, 0, "%s does not exist; built-in defaults are in use", path);
        else {
                if (c->gateway_token && (st.st_mode & 0077))
                        finding(r, "error", "secrets", path, 0,
                                "%s holds [gateway] token and is readable by group or others (mode %04o); "
                                "fix: chmod 600 %s, or move the token to token_file",
                                path, (unsigned) (st.st_mode & 07777), path);
                else if (st.st_mode & 0022)
                        finding(r, "warning", "config", path, 0, "%s is writable by group or others; fix: chmod 600 %s",
                                path, path);
        }
        for (size_t i = 0; i < c->n_diagnostics; i++) {
                const struct config_diagnostic *d = &c->diagnostics[i];
                char where[256] = "";
                if (d->section || d->key)
                        snprintf(where, sizeof where, "%s%s%s%s%s", d->section ? "[" : "", d->section ? d->section : "",
                                 d->section ? "] " : "", d->key ? d->key : "", ": ");
                char location[32] = "";
                if (d->line)
                        snprintf(location, sizeof location, ":%u", d->line);
                finding(r, d->severity == CONFIG_ERROR ? "error" : "warning", "config", path, d->line,
                        "%s%s: %s%s", path, location, where, d->message);
        }
        if (c->n_errors == 0 && stat(path, &st) == 0)
                finding(r, "ok", "config", path, 0, "%s parses%s", path,
                        c->n_diagnostics ? " (with warnings above)" : " cleanly");

        check_secret_file(r, c, "gateway", "token_file", c->gateway_token_file, 0);
        for (size_t i = 0; i < c->n_providers; i++) {
                char section[96];
                snprintf(section, sizeof section, "providers.%s", c->providers[i].name);
                check_secret_file(r, c, section, "api_key_file", c->providers[i].api_key_file, c->providers[i].line);
                if (!c->providers[i].api_key_file && !c->providers[i].base_url &&
                    (streq(c->providers[i].kind, "openai") || streq(c->providers[i].kind, "anthropic")))
                        finding(r, "warning", "secrets", c->path, c->providers[i].line,
                                "[%s] api_key_file: not set, and %s needs a key: set api_key_file (mode 0600), or give "
                                "the service the credential provider-%s (LoadCredential=provider-%s:/path/to/key)",
                                section, streq(c->providers[i].kind, "openai") ? "api.openai.com" : "api.anthropic.com",
                                c->providers[i].name, c->providers[i].name);
        }
        for (size_t i = 0; i < c->n_channels; i++) {
                const struct config_channel *ch = &c->channels[i];
                char section[96];
                snprintf(section, sizeof section, "channels.%s", ch->name);
                for (size_t j = 0; j < ch->n_settings; j++) {
                        size_t len = strlen(ch->settings[j].key);
                        if (len > 5 && streq(ch->settings[j].key + len - 5, "_file") &&
                            !streq(ch->settings[j].key, "ca_file"))
                                check_secret_file(r, c, section, ch->settings[j].key, ch->settings[j].value,
                                                  ch->settings[j].line);
                }
        }
        *ret = c;
}

static void check_dirs(struct report *r) {
        _cleanup_free_ char *home = paths_home(), *runtime = paths_runtime_dir();
        const char *xdg = getenv("XDG_RUNTIME_DIR");
        struct stat st;

        if (!home) {
                finding(r, "error", "paths", NULL, 0, "cannot determine CONCLAVE_HOME: HOME is not set");
                return;
        }
        if (stat(home, &st) < 0)
                finding(r, "ok", "paths", home, 0, "%s does not exist yet; the daemon creates it (mode 0700)", home);
        else if (!S_ISDIR(st.st_mode))
                finding(r, "error", "paths", home, 0, "%s is not a directory", home);
        else if (access(home, R_OK | W_OK | X_OK) < 0)
                finding(r, "error", "paths", home, 0, "%s is not writable by you; fix its owner", home);
        else if (st.st_mode & 0077)
                finding(r, "warning", "paths", home, 0,
                        "%s is accessible by group or others (mode %04o); fix: chmod 700 %s", home,
                        (unsigned) (st.st_mode & 07777), home);
        else
                finding(r, "ok", "paths", home, 0, "%s is private and writable", home);

        if (!xdg || !*xdg)
                finding(r, "warning", "paths", NULL, 0,
                        "XDG_RUNTIME_DIR is not set; sockets go to %s (log in through a session, or "
                        "`loginctl enable-linger $USER`)", runtime ? runtime : "?");
        else if (stat(xdg, &st) < 0 || !S_ISDIR(st.st_mode) || access(xdg, W_OK) < 0)
                finding(r, "error", "paths", xdg, 0, "XDG_RUNTIME_DIR=%s is not a writable directory", xdg);
        else
                finding(r, "ok", "paths", xdg, 0, "runtime directory %s", runtime ? runtime : "?");
}

/* Where `systemctl --user` looks for units, most specific first. */
static void check_unit(struct report *r) {
        _cleanup_free_ char *supervisor = cli_find_program("conclave-supervisor"), *config_home = NULL;
        const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
        const char *dirs[] = { NULL, "/etc/systemd/user", "/usr/local/lib/systemd/user",
                               "/usr/lib/systemd/user", SYSTEMDUSERUNITDIR };

        if (xdg && *xdg)
                config_home = path_join(xdg, "systemd/user");
        else if (home)
                config_home = path_join(home, ".config/systemd/user");
        dirs[0] = config_home;

        if (!supervisor || access(supervisor, X_OK) < 0)
                finding(r, "error", "install", supervisor, 0, "conclave-supervisor not found at %s; reinstall Conclave",
                        supervisor ? supervisor : "?");
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                _cleanup_free_ char *unit = NULL;
                if (!dirs[i])
                        continue;
                unit = path_join(dirs[i], "conclave.service");
                if (unit && access(unit, R_OK) == 0) {
                        finding(r, "ok", "install", unit, 0, "user unit installed: %s", unit);
                        return;
                }
        }
        finding(r, "warning", "install", NULL, 0,
                "conclave.service is not installed for systemd --user; fix: conclave service install");
}

/* What the daemon noted while opening ledgers (groups/<id>/state/recovery.json). */
static void check_ledgers(struct report *r) {
        _cleanup_free_ char *home = paths_home(), *dir = NULL;
        DIR *d;
        struct dirent *de;

        if (!home || !(dir = path_join(home, "groups")) || !(d = opendir(dir)))
                return;
        while ((de = readdir(d))) {
                _cleanup_free_ char *path = NULL, *text = NULL;
                _cleanup_json_ struct json_object *o = NULL;
                struct json_object *v;
                const char *what, *reason, *time;
                uint64_t offset, bytes;

                if (de->d_name[0] == '.')
                        continue;
                if (asprintf(&path, "%s/%s/state/recovery.json", dir, de->d_name) < 0)
                        break;
                if (read_file_bounded(path, 65536, &text, NULL) < 0 || !(o = json_tokener_parse(text)))
                        continue;
                what = json_object_object_get_ex(o, "what", &v) ? json_object_get_string(v) : "";
                reason = json_object_object_get_ex(o, "reason", &v) ? json_object_get_string(v) : "";
                time = json_object_object_get_ex(o, "time", &v) ? json_object_get_string(v) : "?";
                offset = json_object_object_get_ex(o, "offset", &v) ? json_object_get_uint64(v) : 0;
                bytes = json_object_object_get_ex(o, "bytes", &v) ? json_object_get_uint64(v) : 0;
                if (streq(what, "corrupt"))
                        finding(r, "error", "ledger", path, 0,
                                "group %s: ledger.jsonl is corrupt at byte offset %" PRIu64 " (%s), found %s; the group "
                                "is stopped. Fix or remove that line (keep a copy), then restart the daemon",
                                de->d_name, offset, reason, time);
                else if (streq(what, "truncated"))
                        finding(r, "warning", "ledger", path, 0,
                                "group %s: a torn last line (%" PRIu64 " bytes, never acknowledged) was cut at byte "
                                "offset %" PRIu64 " on %s (%s); delete %s once reviewed",
                                de->d_name, bytes, offset, time, reason, path);
        }
        closedir(d);
}

/* Every versioned file under CONCLAVE_HOME in a format this Conclave reads (formats.h). */
static void check_formats(struct report *r) {
        _cleanup_free_ char *home = paths_home();
        _cleanup_(format_survey_freep) struct format_survey *s = NULL;
        int k;

        if (!home)
                return;
        k = format_survey(home, &s);
        if (k < 0) {
                finding(r, "warning", "formats", home, 0, "cannot check the file formats under %s: %s", home, strerror(-k));
                return;
        }
        for (size_t i = 0; i < s->n_files; i++) {
                const struct format_file *f = &s->files[i];
                const struct format_info *info = format_info(f->kind);
                _cleanup_free_ char *full = path_join(home, f->path);
                char message[512];

                switch (f->status) {
                case FORMAT_NEWER:
                        (void) format_newer_message(f, message, sizeof message);
                        finding(r, "error", "formats", full, 0, "%s: the daemon refuses to start; %s", message,
                                format_newer_advice(f->kind));
                        break;
                case FORMAT_OLDER:
                        finding(r, "ok", "formats", full, 0, "%s is in format %u; the daemon migrates it to %u at its next start",
                                f->path, f->version, info->current);
                        break;
                case FORMAT_INVALID:
                        finding(r, "warning", "formats", full, 0, "cannot tell the format version of %s (%s); %s", f->path,
                                f->error == -EBADMSG ? "its content is not what the format promises" : strerror(-f->error),
                                info->derived ? "it is rebuilt from the ledger when unusable"
                                              : "the daemon reports what is wrong when it loads it");
                        break;
                case FORMAT_CURRENT:
                        break;
                }
        }
        if (s->n_newer == 0 && s->n_older == 0 && s->n_invalid == 0)
                finding(r, "ok", "formats", home, 0, "%zu file(s) under %s are in the formats this Conclave (%s) writes",
                        s->n_files, home, PACKAGE_VERSION);
        if (s->n_preserved > 0)
                finding(r, "ok", "formats", home, 0,
                        "%zu copies of files from before a migration (*.pre-vN) are under %s; remove them once this "
                        "version runs well (a downgrade puts them back)", s->n_preserved, home);
}

/* The daemon's own view: a daemon older than this conclave (an upgrade without a restart). */
static void check_daemon_version(struct report *r, int fd, const char *path) {
        _cleanup_json_ struct json_object *result = NULL;
        const char *version;

        if (cli_call(fd, "status", NULL, &result) < 0)
                return;
        version = cli_str(result, "version");
        if (version && !streq(version, PACKAGE_VERSION))
                finding(r, "warning", "daemon", path, 0,
                        "the daemon runs Conclave %s, this conclave is %s: restart it to run the installed version "
                        "(systemctl --user restart conclave.service)", version, PACKAGE_VERSION);
        else if (cli_bool(result, "executable_replaced"))
                finding(r, "warning", "daemon", path, 0,
                        "conclave-supervisor was replaced on disk since the daemon started (an upgrade?): restart it "
                        "(systemctl --user restart conclave.service)");
}

static void check_daemon(struct report *r) {
        _cleanup_free_ char *path = paths_control_socket();
        int fd = path ? control_connect(path) : -ENOMEM;

        if (fd >= 0) {
                finding(r, "ok", "daemon", path, 0, "the daemon answers on %s", path);
                check_daemon_version(r, fd, path);
                close(fd);
        } else
                finding(r, "ok", "daemon", path, 0, "the daemon is not running (nothing answers on %s)",
                        path ? path : "?");
}

/* --- providers, live ------------------------------------------------------------------------- */

static void report_provider_results(struct report *r, const struct config *c, struct json_object *results,
                                    const char *how) {
        for (size_t i = 0; i < json_object_array_length(results); i++) {
                struct json_object *o = json_object_array_get_idx(results, i);
                const struct config_provider *p = config_find_provider(c, cli_str(o, "provider"));

                finding(r, cli_bool(o, "ok") ? "ok" : "error", "provider", c->path, p ? p->line : 0,
                        "[providers.%s] %s, model %s at %s: %s (%s ms, %s)", cli_str(o, "provider") ?: "?",
                        cli_str(o, "kind") ?: "?", cli_str(o, "model") ?: "?", cli_str(o, "url") ?: "?",
                        cli_str(o, "message") ?: "?", cli_str(o, "elapsed_ms") ?: "-", how);
        }
}

struct local_checks {
        sd_event *event;
        struct json_object *results;
};

static void on_local_checks(struct json_object *results, void *userdata) {
        struct local_checks *lc = userdata;

        lc->results = json_object_get(results);
        (void) sd_event_exit(lc->event, 0);
}

/* The daemon's conclave-channels checks with the daemon's configuration (and its credentials);
 * without a daemon, or for another --config, this process checks by itself. */
static void check_providers(struct report *r, const struct config *c, bool own_config) {
        _cleanup_free_ char *path = paths_control_socket();
        _cleanup_json_ struct json_object *result = NULL, *error = NULL;
        struct local_checks lc = {};
        struct http_engine *engine = NULL;
        struct provider_checks *pc = NULL;
        int fd, k;

        if (c->n_providers == 0 || c->n_errors > 0)
                return;
        fd = own_config && path ? control_connect(path) : -ENOTCONN;
        if (fd >= 0) {
                k = control_call(fd, "provider.check", NULL, &result, &error);
                close(fd);
                if (k >= 0 && json_object_is_type(result, json_type_array)) {
                        report_provider_results(r, c, result, "checked by the running daemon");
                        return;
                }
                /* e.g. conclave-channels restarting: check from here instead. */
        }
        k = sd_event_new(&lc.event);
        if (k >= 0)
                k = http_engine_new(lc.event, &engine);
        if (k >= 0)
                k = provider_checks_start(lc.event, engine, c, NULL, 0, on_local_checks, &lc, &pc);
        if (k >= 0)
                k = sd_event_loop(lc.event);
        if (k < 0)
                finding(r, "error", "provider", c->path, 0, "cannot run the provider checks: %s", strerror(-k));
        else if (lc.results)
                report_provider_results(r, c, lc.results, "checked from here");
        provider_checks_cancel(pc);
        http_engine_free(engine);
        sd_event_unref(lc.event);
        json_object_put(lc.results);
}

int cmd_doctor(int argc, char **argv) {
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                { "config", required_argument, NULL, 'c' },
                { "offline", no_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct report r = {};
        _cleanup_free_ char *path = NULL;
        struct config *c = NULL;
        bool offline = false, own_config = true;
        int opt;

        optind = 1;
        while ((opt = getopt_long(argc, argv, "c:h", options, NULL)) >= 0)
                switch (opt) {
                case 'j':
                        r.json = true;
                        break;
                case 'c':
                        free(path);
                        path = strdup(optarg);
                        own_config = false;
                        break;
                case 'o':
                        offline = true;
                        break;
                case 'h':
                        printf("Usage: conclave doctor [--json] [--config FILE] [--offline]\n\n"
                               "Checks the configuration (every error with file, line, section and key),\n"
                               "secret files' permissions, directories, the user unit, the ledgers' recovery\n"
                               "notes, the format versions of the files under CONCLAVE_HOME, the daemon\n"
                               "(running, and running this version), and each LLM provider live: reachable,\n"
                               "API key accepted, model available (one small request each, no tokens;\n"
                               "through the running daemon when there is one).\n"
                               "Exit status 1 when an error was found, 0 otherwise.\n\n"
                               "  -c, --config FILE  configuration file to check\n"
                               "      --offline      no network: skip the live provider checks\n"
                               "      --json         print the findings as a JSON array\n");
                        return EXIT_SUCCESS;
                default:
                        return EXIT_USAGE;
                }
        if (optind < argc) {
                fprintf(stderr, "conclave doctor: unexpected argument '%s'\n", argv[optind]);
                return EXIT_USAGE;
        }
        if (!path)
                path = paths_config_file();
        if (!path) {
                fprintf(stderr, "conclave doctor: cannot determine the configuration path (is HOME set?)\n");
                return EXIT_FAILURE;
        }
        if (r.json)
                r.findings = json_object_new_array();

        check_config(&r, path, &c);
        check_dirs(&r);
        check_unit(&r);
        check_ledgers(&r);
        check_formats(&r);
        check_daemon(&r);
        if (!offline)
                check_providers(&r, c, own_config);
        config_free(c);

        if (r.json) {
                printf("%s\n", json_object_to_json_string_ext(r.findings, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED));
                json_object_put(r.findings);
        } else
                printf("\n%u error(s), %u warning(s)\n", r.errors, r.warnings);
        return r.errors ? EXIT_FAILURE : EXIT_SUCCESS;
}
