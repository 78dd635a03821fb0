/* IRC message syntax (RFC 1459/2812 as servers speak it today): parsing a line, nicks and
 * their case mapping, mIRC formatting codes, and cutting outbound text into lines that fit.
 * Pure functions, unit-tested (tests/unit/test_irc_proto.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define IRC_PARAMS_MAX 15
#define IRC_LINE_MAX 512 /* with CR LF */
#define IRC_NICK_MAX 64

struct irc_message {
        const char *prefix; /* "nick!user@host" or a server name; NULL: none */
        const char *command;
        const char *params[IRC_PARAMS_MAX];
        size_t n_params;    /* the trailing parameter included */
};

/* Parses line in place (it is cut into pieces). IRCv3 message tags are skipped. -EINVAL when
 * there is no command. */
int irc_parse(char *line, struct irc_message *m);
/* The nick of a "nick!user@host" prefix into buf (empty when none fits). */
void irc_prefix_nick(const char *prefix, char *buf, size_t size);
/* RFC 1459 case mapping: A-Z and []\~ fold to a-z and {}|^. */
void irc_casefold(char *s);
bool irc_nick_equal(const char *a, const char *b);
bool irc_valid_nick(const char *s);
bool irc_valid_channel(const char *s);
/* Removes mIRC formatting (bold, colour with its digits, italics, underline, reverse, reset,
 * monospace, strike-through) in place. */
void irc_strip_formatting(char *s);
/* Cuts text into pieces of at most max bytes: at each newline, else at the last space that
 * fits, else at a UTF-8 character boundary. Empty lines are skipped. Calls fn per piece (no
 * CR or LF in it); stops at fn's negative return. Returns the number of pieces or that
 * negative value. With fn NULL only counts. */
typedef int (*irc_piece_fn)(const char *piece, size_t len, void *userdata);
int irc_split_text(const char *text, size_t max, irc_piece_fn fn, void *userdata);
