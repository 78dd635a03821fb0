/* Checks and applies the JSON Schema subset described in mcp_schema.h. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "mcp_schema.h"

#define SCHEMA_PATH_MAX 256

struct walk {
        char path[SCHEMA_PATH_MAX]; /* where in the value (or schema) we are: "", "to", "to[1]" */
        char *err;
        size_t err_size;
};

static int fail(struct walk *w, const char *fmt, ...) _printf_(2, 3);
static int fail(struct walk *w, const char *fmt, ...) {
        int n = 0;
        va_list ap;

        if (w->path[0])
                n = snprintf(w->err, w->err_size, "%s: ", w->path);
        if (n < 0 || (size_t) n >= w->err_size)
                return -EINVAL;
        va_start(ap, fmt);
        vsnprintf(w->err + n, w->err_size - (size_t) n, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

/* Appends ".key" (or "key" at the top) or "[index]" to the path; returns the old length to
 * restore. A path too long to show is cut, which only shortens messages. */
static size_t path_push(struct walk *w, const char *key, size_t index) {
        size_t len = strlen(w->path);

        if (key)
                snprintf(w->path + len, sizeof w->path - len, "%s%s", len ? "." : "", key);
        else
                snprintf(w->path + len, sizeof w->path - len, "[%zu]", index);
        return len;
}

static void path_pop(struct walk *w, size_t len) {
        w->path[len] = 0;
}

static struct json_object *get(struct json_object *o, const char *key) {
        struct json_object *v;
        return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static const char *const type_names[] = { "object", "array", "string", "integer", "number", "boolean", "null" };

static bool type_name_valid(struct json_object *v) {
        if (!json_object_is_type(v, json_type_string))
                return false;
        for (size_t i = 0; i < ELEMENTSOF(type_names); i++)
                if (streq(json_object_get_string(v), type_names[i]))
                        return true;
        return false;
}

static bool has_type(struct json_object *v, const char *type) {
        double d;

        switch (json_object_get_type(v)) {
        case json_type_null:
                return streq(type, "null");
        case json_type_boolean:
                return streq(type, "boolean");
        case json_type_int:
                return streq(type, "integer") || streq(type, "number");
        case json_type_double:
                d = json_object_get_double(v);
                return streq(type, "number") || (streq(type, "integer") && isfinite(d) && d == trunc(d));
        case json_type_string:
                return streq(type, "string");
        case json_type_array:
                return streq(type, "array");
        case json_type_object:
                return streq(type, "object");
        }
        return false;
}

static const char *type_of(struct json_object *v) {
        switch (json_object_get_type(v)) {
        case json_type_null:
                return "null";
        case json_type_boolean:
                return "a boolean";
        case json_type_int:
                return "an integer";
        case json_type_double:
                return "a number";
        case json_type_string:
                return "a string";
        case json_type_array:
                return "an array";
        case json_type_object:
                return "an object";
        }
        return "?";
}

static bool is_count(struct json_object *v) {
        return json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 0;
}

static bool is_number(struct json_object *v) {
        return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
}

static bool is_string_array(struct json_object *v, bool nonempty) {
        if (!json_object_is_type(v, json_type_array) || (nonempty && json_object_array_length(v) == 0))
                return false;
        for (size_t i = 0; i < json_object_array_length(v); i++)
                if (!json_object_is_type(json_object_array_get_idx(v, i), json_type_string))
                        return false;
        return true;
}

static bool pattern_matches(const char *pattern, const char *s, bool *ret_match) {
        regex_t re;

        if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
                return false;
        *ret_match = regexec(&re, s, 0, NULL, 0) == 0;
        regfree(&re);
        return true;
}

/* --- checking a schema ------------------------------------------------------------------- */

static int check(struct walk *w, struct json_object *schema) {
        if (!json_object_is_type(schema, json_type_object))
                return fail(w, "a schema must be an object");
        json_object_object_foreach(schema, key, v) {
                size_t len = path_push(w, key, 0);
                int r = 0;
                bool match;

                if (streq(key, "type")) {
                        if (json_object_is_type(v, json_type_array) && json_object_array_length(v) > 0) {
                                for (size_t i = 0; i < json_object_array_length(v); i++)
                                        if (!type_name_valid(json_object_array_get_idx(v, i)))
                                                r = fail(w, "unknown type name");
                        } else if (!type_name_valid(v))
                                r = fail(w, "unknown type name");
                } else if (streq(key, "properties")) {
                        if (!json_object_is_type(v, json_type_object))
                                r = fail(w, "must be an object");
                        else {
                                json_object_object_foreach(v, name, sub) {
                                        size_t l2 = path_push(w, name, 0);
                                        r = check(w, sub);
                                        path_pop(w, l2);
                                        if (r < 0)
                                                break;
                                }
                        }
                } else if (streq(key, "items"))
                        r = check(w, v);
                else if (streq(key, "required") || streq(key, "enum")) {
                        if (!is_string_array(v, streq(key, "enum")))
                                r = fail(w, "must be an array of strings");
                } else if (streq(key, "additionalProperties")) {
                        if (!json_object_is_type(v, json_type_boolean))
                                r = fail(w, "only a boolean is supported");
                } else if (streq(key, "minItems") || streq(key, "maxItems") || streq(key, "minLength") ||
                           streq(key, "maxLength")) {
                        if (!is_count(v))
                                r = fail(w, "must be a non-negative integer");
                } else if (streq(key, "minimum") || streq(key, "maximum")) {
                        if (!is_number(v))
                                r = fail(w, "must be a number");
                } else if (streq(key, "pattern")) {
                        if (!json_object_is_type(v, json_type_string) || !pattern_matches(json_object_get_string(v), "", &match))
                                r = fail(w, "not a valid regular expression");
                } else if (streq(key, "description") || streq(key, "title")) {
                        if (!json_object_is_type(v, json_type_string))
                                r = fail(w, "must be a string");
                } else if (!streq(key, "default"))
                        r = fail(w, "keyword not supported");
                path_pop(w, len);
                if (r < 0)
                        return r;
        }
        return 0;
}

int mcp_schema_check(struct json_object *schema, char *err, size_t err_size) {
        struct walk w = { .err = err, .err_size = err_size };
        return check(&w, schema);
}

/* --- validating a value ------------------------------------------------------------------ */

static int validate(struct walk *w, struct json_object *schema, struct json_object *v);

static int validate_type(struct walk *w, struct json_object *type, struct json_object *v) {
        char names[128] = "";

        if (!type)
                return 0;
        if (json_object_is_type(type, json_type_string))
                return has_type(v, json_object_get_string(type)) ? 0
                                                                 : fail(w, "must be of type %s, not %s", json_object_get_string(type), type_of(v));
        for (size_t i = 0; i < json_object_array_length(type); i++) {
                const char *name = json_object_get_string(json_object_array_get_idx(type, i));
                size_t len = strlen(names);
                if (has_type(v, name))
                        return 0;
                snprintf(names + len, sizeof names - len, "%s%s", i ? " or " : "", name);
        }
        return fail(w, "must be of type %s, not %s", names, type_of(v));
}

static size_t utf8_length(const char *s) {
        size_t n = 0;
        for (; *s; s++)
                if (((unsigned char) *s & 0xC0) != 0x80)
                        n++;
        return n;
}

static int validate_string(struct walk *w, struct json_object *schema, struct json_object *v) {
        const char *s = json_object_get_string(v);
        struct json_object *k;
        size_t len;
        bool match;

        if (strlen(s) != (size_t) json_object_get_string_len(v))
                return fail(w, "must not contain a NUL character");
        len = utf8_length(s);
        if ((k = get(schema, "minLength")) && len < (size_t) json_object_get_int64(k))
                return len == 0 ? fail(w, "must not be empty")
                                : fail(w, "must be at least %" PRId64 " characters long", json_object_get_int64(k));
        if ((k = get(schema, "maxLength")) && len > (size_t) json_object_get_int64(k))
                return fail(w, "must be at most %" PRId64 " characters long", json_object_get_int64(k));
        if ((k = get(schema, "pattern"))) {
                if (!pattern_matches(json_object_get_string(k), s, &match))
                        return fail(w, "the schema's pattern does not compile");
                if (!match)
                        return fail(w, "\"%.64s\" does not match %s", s, json_object_get_string(k));
        }
        if ((k = get(schema, "enum"))) {
                for (size_t i = 0; i < json_object_array_length(k); i++)
                        if (streq(s, json_object_get_string(json_object_array_get_idx(k, i))))
                                return 0;
                return fail(w, "\"%.64s\" is not one of %s", s, json_object_to_json_string_ext(k, JSON_C_TO_STRING_PLAIN));
        }
        return 0;
}

static int validate_number(struct walk *w, struct json_object *schema, struct json_object *v) {
        double d = json_object_get_double(v);
        struct json_object *k;

        if ((k = get(schema, "minimum")) && d < json_object_get_double(k))
                return fail(w, "must be at least %s", json_object_get_string(k));
        if ((k = get(schema, "maximum")) && d > json_object_get_double(k))
                return fail(w, "must be at most %s", json_object_get_string(k));
        return 0;
}

static int validate_array(struct walk *w, struct json_object *schema, struct json_object *v) {
        size_t n = json_object_array_length(v);
        struct json_object *k, *items = get(schema, "items");

        if ((k = get(schema, "minItems")) && n < (size_t) json_object_get_int64(k))
                return fail(w, "must have at least %" PRId64 " items", json_object_get_int64(k));
        if ((k = get(schema, "maxItems")) && n > (size_t) json_object_get_int64(k))
                return fail(w, "must have at most %" PRId64 " items", json_object_get_int64(k));
        for (size_t i = 0; items && i < n; i++) {
                size_t len = path_push(w, NULL, i);
                int r = validate(w, items, json_object_array_get_idx(v, i));
                if (r < 0)
                        return r;
                path_pop(w, len);
        }
        return 0;
}

static int validate_object(struct walk *w, struct json_object *schema, struct json_object *v) {
        struct json_object *required = get(schema, "required"), *properties = get(schema, "properties");
        struct json_object *additional = get(schema, "additionalProperties");

        for (size_t i = 0; required && i < json_object_array_length(required); i++) {
                const char *name = json_object_get_string(json_object_array_get_idx(required, i));
                if (!json_object_object_get_ex(v, name, NULL))
                        return fail(w, "missing required property \"%s\"", name);
        }
        json_object_object_foreach(v, key, value) {
                struct json_object *sub = NULL;
                size_t len;
                int r;

                if (!properties || !json_object_object_get_ex(properties, key, &sub)) {
                        if (additional && !json_object_get_boolean(additional))
                                return fail(w, "unknown property \"%.64s\"", key);
                        continue;
                }
                len = path_push(w, key, 0);
                r = validate(w, sub, value);
                if (r < 0)
                        return r;
                path_pop(w, len);
        }
        return 0;
}

static int validate(struct walk *w, struct json_object *schema, struct json_object *v) {
        int r = validate_type(w, get(schema, "type"), v);

        if (r < 0)
                return r;
        switch (json_object_get_type(v)) {
        case json_type_string:
                return validate_string(w, schema, v);
        case json_type_int:
        case json_type_double:
                return validate_number(w, schema, v);
        case json_type_array:
                return validate_array(w, schema, v);
        case json_type_object:
                return validate_object(w, schema, v);
        default:
                return 0;
        }
}

int mcp_schema_validate(struct json_object *schema, struct json_object *value, char *err, size_t err_size) {
        struct walk w = { .err = err, .err_size = err_size };
        return validate(&w, schema, value);
}
