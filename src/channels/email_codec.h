/* E-mail wire formats for the email channel: reading an RFC 5322 message fetched over IMAP
 * (unfolded headers, From, Message-ID, In-Reply-To, Subject with RFC 2047 words, the first
 * text/plain part in quoted-printable, base64 or 8bit, quoted tail stripped), building the
 * reply (threaded by In-Reply-To/References, quoted-printable UTF-8), and the IMAP untagged
 * responses we read (SEARCH, UIDVALIDITY). Pure code: no I/O. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "platform.h"

/* Largest message fetched and parsed. */
#define EMAIL_MESSAGE_MAX (1024u * 1024u)

/* Parses one message. Returns 1 with *ret filled (id the Message-ID with its angle brackets,
 * or fallback_id when it has none; sender the lower-cased address; sender_name the display
 * name; conversation the address to answer; thread the Message-ID; subject; text the new part
 * of the text/plain body), 0 for mail we must not answer (Auto-Submitted, bounces, no text),
 * -EBADMSG when it is not a message. */
int email_parse(const char *raw, size_t len, const char *fallback_id, struct platform_message *ret);

struct email_reply {
        const char *from;        /* our address */
        const char *to;          /* their address */
        const char *subject;     /* theirs; "Re: " is added unless present; may be NULL */
        const char *message_id;  /* ours, "<…@…>" */
        const char *in_reply_to; /* theirs, "<…@…>"; may be NULL */
        const char *text;
        size_t text_len;
        time_t date;
};

/* The whole message, CRLF line ends, ready for SMTP. NULL on ENOMEM or a header value with
 * CR/LF or an address that is not one. */
char *email_build(const struct email_reply *r, size_t *ret_len);

/* "user@host" with no spaces, controls, or <>"(),;: at most 254 bytes. */
bool email_address_valid(const char *s);

/* UIDs from "* SEARCH 1 5 9" lines, only those >= min_uid (IMAP's "N:*" always names the
 * last message, even below N). Sorted ascending. */
int imap_parse_search(const char *data, size_t len, uint32_t min_uid, uint32_t **ret, size_t *ret_n);
/* "* OK [UIDVALIDITY n]" from SELECT/EXAMINE output; 0 and *ret, or -ENOENT. */
int imap_parse_uidvalidity(const char *data, size_t len, uint32_t *ret);
