/* The subset of JSON Schema that `conclave mcp` declares for its tools, and a validator for it,
 * so the arguments checked are exactly the schema a client was shown (and the answers sent
 * are exactly what the tool's outputSchema promises). */
#pragma once

#include <json-c/json.h>
#include <stddef.h>

/* Keywords understood: type (a name or a list of names: object, array, string, integer,
 * number, boolean, null), properties, required, additionalProperties (boolean), items,
 * minItems, maxItems, minLength, maxLength (characters), pattern (a POSIX extended regular
 * expression; use only syntax that means the same in ECMA-262), enum (strings), minimum,
 * maximum, and the annotations description, title and default. */

/* 0 when schema uses only those keywords, with well-formed values; -EINVAL with a message
 * naming the place otherwise. */
int mcp_schema_check(struct json_object *schema, char *err, size_t err_size);

/* 0 when value satisfies schema; -EINVAL with a message naming the offending place
 * ("to[1]: …") otherwise; -ENOMEM. Strings containing NUL never validate. */
int mcp_schema_validate(struct json_object *schema, struct json_object *value, char *err, size_t err_size);
