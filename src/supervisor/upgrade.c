/* Format versions at start-up (see upgrade.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "formats.h"
#include "log.h"
#include "macro.h"
#include "migrate.h"
#include "paths.h"
#include "supervisor.h"
#include "upgrade.h"

static void log_newer(const char *home, const struct format_file *f) {
        _cleanup_free_ char *full = path_join(home, f->path);
        char message[512], fields[1024];

        (void) format_newer_message(f, message, sizeof message);
        snprintf(fields, sizeof fields,
                 "MESSAGE_ID=" MESSAGE_ID_FORMAT_NEWER "\nCONCLAVE_FILE=%s\nCONCLAVE_FORMAT_VERSION=%u\n"
                 "CONCLAVE_FORMAT_SUPPORTED=%u",
                 full ? full : f->path, f->version, format_info(f->kind)->current);
        log_fields_errno(LOG_ERR, 0, fields, "refusing to start: %s/%s; %s", home, message,
                         format_newer_advice(f->kind));
}

static int migrate_one(const char *home, const struct format_file *f) {
        const struct format_info *info = format_info(f->kind);
        _cleanup_free_ char *kept = NULL, *full = path_join(home, f->path);
        char fields[1024];
        int r;

        r = migrate_file(home, f, &kept);
        if (r < 0) {
                if (info->derived) {
                        /* Its loader rebuilds it from the ledger when it cannot use it. */
                        log_warning_errno(r, "cannot migrate %s/%s from format %u to %u; it will be rebuilt from the ledger",
                                          home, f->path, f->version, info->current);
                        return 0; /* not counted as migrated */
                }
                return log_error_errno(r, "cannot migrate %s/%s from format %u to %u; not starting (nothing "
                                       "was changed in that file)", home, f->path, f->version, info->current);
        }
        snprintf(fields, sizeof fields,
                 "MESSAGE_ID=" MESSAGE_ID_FORMAT_MIGRATED "\nCONCLAVE_FILE=%s\nCONCLAVE_FORMAT_VERSION=%u\n"
                 "CONCLAVE_FORMAT_SUPPORTED=%u",
                 full ? full : f->path, f->version, info->current);
        log_fields_errno(LOG_NOTICE, 0, fields, "migrated %s/%s from format %u to %u%s%s%s", home, f->path,
                         f->version, info->current, kept ? " (the original is kept as " : "", kept ? kept : "",
                         kept ? ")" : "");
        return 1;
}

int upgrade_home_formats(struct supervisor *s) {
        _cleanup_(format_survey_freep) struct format_survey *survey = NULL;
        size_t migrated = 0;
        int r;

        r = format_survey(s->home, &survey);
        if (r < 0)
                return log_error_errno(r, "cannot check the file formats under %s", s->home);

        if (survey->n_newer > 0) {
                const struct format_file *first = NULL;
                char message[512] = "";
                for (size_t i = 0; i < survey->n_files; i++)
                        if (survey->files[i].status == FORMAT_NEWER) {
                                log_newer(s->home, &survey->files[i]);
                                if (!first)
                                        first = &survey->files[i];
                        }
                (void) format_newer_message(first, message, sizeof message);
                (void) sd_notifyf(false, "STATUS=refusing to start: %s%s", message,
                                  survey->n_newer > 1 ? " (and more: see the journal or `conclave doctor`)" : "");
                log_error("refusing to start: %zu file(s) under %s were written by a newer Conclave than this one (%s); "
                          "see `conclave doctor` and docs/operations.md (Downgrading)",
                          survey->n_newer, s->home, PACKAGE_VERSION);
                return -EPROTONOSUPPORT;
        }
        for (size_t i = 0; i < survey->n_files; i++)
                if (survey->files[i].status == FORMAT_INVALID)
                        log_debug("cannot tell the format version of %s/%s (%s); left to the code that loads it",
                                  s->home, survey->files[i].path, strerror(-survey->files[i].error));
        if (survey->n_older == 0)
                return 0;

        (void) sd_notifyf(false, "STATUS=migrating %zu file(s) to the formats of Conclave %s", survey->n_older,
                          PACKAGE_VERSION);
        for (size_t i = 0; i < survey->n_files; i++) {
                if (survey->files[i].status != FORMAT_OLDER)
                        continue;
                r = migrate_one(s->home, &survey->files[i]);
                if (r < 0)
                        return r;
                migrated += (size_t) r;
        }
        log_info("migrated %zu file(s) under %s to the formats of Conclave %s", migrated, s->home, PACKAGE_VERSION);
        return 0;
}
