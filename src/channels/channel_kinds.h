/* The channel kinds of this build, one line each: CHANNEL_KIND(NAME) refers to
 * `const struct channel_kind channel_kind_NAME`, defined in src/channels/NAME.c (or a file of
 * that kind's own). Adding a kind: write its file, add it to Makefile.am, add one line here.
 * Included several times by channel_registry.c; no include guard on purpose. */
CHANNEL_KIND(irc)
CHANNEL_KIND(webhook)
