/* A provider's API key, read when a request starts (so a rotated key file needs no reload) and
 * never logged: [providers.NAME] api_key_file, or a systemd credential. */
#pragma once

struct config_provider;

/* *ret: the key, or NULL when none is configured (a local server that needs none). Sources, in
 * order: api_key_file (absolute, relative to CONCLAVE_HOME, or "credential:ID" for
 * $CREDENTIALS_DIRECTORY/ID), then $CREDENTIALS_DIRECTORY/provider-NAME if it exists.
 * *ret_where (optional) names the file, for messages. -EBADMSG: not one line of printable
 * characters; -ENODATA: empty; -ENOENT, -EACCES, …: cannot be read. */
int llm_api_key_read(const struct config_provider *p, char **ret, char **ret_where);
