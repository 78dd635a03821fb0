/* Start-up check of the file formats under CONCLAVE_HOME: a file written by a newer Conclave
 * stops the daemon before anything is opened; older files are migrated (see migrate.h). */
#pragma once

struct supervisor;

/* conclave-supervisor's exit status when it refuses to start on files of a newer format
 * (EX_DATAERR); units/conclave.service lists it in RestartPreventExitStatus=. */
#define EXIT_FORMAT_NEWER 65

#define MESSAGE_ID_FORMAT_NEWER "60cc205a74f647289669464f74319627"
#define MESSAGE_ID_FORMAT_MIGRATED "7ac8cf19ff664125bb3b09cc8efda262"

/* 0 when every file is in a format this Conclave reads (after migrating the older ones);
 * -EPROTONOSUPPORT after logging each newer file; another -errno when the home cannot be
 * surveyed or a file that is not derived cannot be migrated. */
int upgrade_home_formats(struct supervisor *s);
