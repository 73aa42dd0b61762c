/*
 * redis_ping: a Vigil check in C. Sends PING to a Redis server through the
 * host's `tcp` capability and expects +PONG.
 *
 * Settings (`[checks.<phase>.config]` or `vigil check --config k=v`):
 *   host      default 127.0.0.1
 *   port      default 6379
 *   password  sent with AUTH first, when given
 *   timeout   deadline of each step (connect, send, read), "500ms" or "2s";
 *             default 1s
 *
 * ok     +PONG
 * retry  refused, timed out, -LOADING, -MASTERDOWN, -BUSY, anything else
 * error  bad settings, a destination that is not granted, -NOAUTH,
 *        -WRONGPASS, a rejected password
 *
 * Needs the grant tcp://HOST:PORT. Build: `make examples` (see
 * docs/writing-checks.md).
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checker.h"

typedef vigil_health_types_outcome_t outcome_t;
typedef vigil_health_tcp_error_code_t error_code_t;

/* ---- verdicts ---------------------------------------------------------- */

static void verdict(outcome_t *ret, uint8_t tag, const char *fmt, ...) {
    char message[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    ret->tag = tag;
    if (tag == VIGIL_HEALTH_TYPES_OUTCOME_RETRY) {
        checker_string_dup(&ret->val.retry, message);
    } else {
        checker_string_dup(&ret->val.error, message);
    }
}

#define OK(ret) ((ret)->tag = VIGIL_HEALTH_TYPES_OUTCOME_OK)
#define RETRY(ret, ...) verdict(ret, VIGIL_HEALTH_TYPES_OUTCOME_RETRY, __VA_ARGS__)
#define ERROR(ret, ...) verdict(ret, VIGIL_HEALTH_TYPES_OUTCOME_ERROR, __VA_ARGS__)

/* A failed capability call: denied and invalid need a change of grants or
 * settings (error); everything else may pass (retry). */
static void call_failed(outcome_t *ret, const char *what, error_code_t *err) {
    const checker_string_t *why = NULL;
    const char *text = "failed";
    switch (err->tag) {
    case VIGIL_HEALTH_TYPES_ERROR_CODE_DENIED: text = "denied"; why = &err->val.denied; break;
    case VIGIL_HEALTH_TYPES_ERROR_CODE_INVALID: text = "invalid"; why = &err->val.invalid; break;
    case VIGIL_HEALTH_TYPES_ERROR_CODE_IO: text = "I/O error"; why = &err->val.io; break;
    case VIGIL_HEALTH_TYPES_ERROR_CODE_TIMEOUT: text = "timed out"; break;
    case VIGIL_HEALTH_TYPES_ERROR_CODE_REFUSED: text = "connection refused"; break;
    case VIGIL_HEALTH_TYPES_ERROR_CODE_NOT_FOUND: text = "not found"; break;
    }
    int len = why ? (int)why->len : 0;
    const char *sep = why ? ": " : "";
    const char *detail = why ? (const char *)why->ptr : "";
    if (err->tag == VIGIL_HEALTH_TYPES_ERROR_CODE_DENIED ||
        err->tag == VIGIL_HEALTH_TYPES_ERROR_CODE_INVALID) {
        ERROR(ret, "%s: %s%s%.*s", what, text, sep, len, detail);
    } else {
        RETRY(ret, "%s: %s%s%.*s", what, text, sep, len, detail);
    }
    vigil_health_tcp_error_code_free(err);
}

/* ---- settings ---------------------------------------------------------- */

typedef struct {
    char host[256];
    uint16_t port;
    char password[256];
    int has_password;
    uint32_t timeout_ms;
} settings_t;

/* The last value of `key`, NUL-terminated into `out`; 0 when absent. */
static int config(const vigil_health_types_target_t *target, const char *key,
                  char *out, size_t size, int *too_long) {
    int found = 0;
    for (size_t i = 0; i < target->config.len; i++) {
        const checker_tuple2_string_string_t *kv = &target->config.ptr[i];
        if (kv->f0.len == strlen(key) && memcmp(kv->f0.ptr, key, kv->f0.len) == 0) {
            *too_long = kv->f1.len >= size;
            size_t n = *too_long ? size - 1 : kv->f1.len;
            memcpy(out, kv->f1.ptr, n);
            out[n] = '\0';
            found = 1;
        }
    }
    return found;
}

/* "250ms", "2s" or "1.5s" -> milliseconds; -1 when malformed. */
static long parse_millis(const char *text) {
    char *end = NULL;
    double value = strtod(text, &end);
    if (end == text || value < 0) return -1;
    if (strcmp(end, "ms") == 0) return (long)value;
    if (strcmp(end, "s") == 0) return (long)(value * 1000);
    return -1;
}

/* Fills `s`; on a bad setting, sets the error verdict and returns 0. */
static int read_settings(const vigil_health_types_target_t *target, settings_t *s,
                         outcome_t *ret) {
    static const char *known[] = {"host", "port", "password", "timeout"};
    for (size_t i = 0; i < target->config.len; i++) {
        const checker_string_t *key = &target->config.ptr[i].f0;
        int ok = 0;
        for (size_t k = 0; k < sizeof known / sizeof *known; k++) {
            ok |= key->len == strlen(known[k]) && memcmp(key->ptr, known[k], key->len) == 0;
        }
        if (!ok) {
            ERROR(ret, "unknown config key `%.*s` (known keys: host, port, password, timeout)",
                  (int)key->len, (const char *)key->ptr);
            return 0;
        }
    }

    char value[256];
    int too_long = 0;
    strcpy(s->host, "127.0.0.1");
    if (config(target, "host", value, sizeof value, &too_long)) {
        if (too_long || value[0] == '\0') {
            ERROR(ret, "config key `host` must be a host name or address, got \"%s\"", value);
            return 0;
        }
        strcpy(s->host, value);
    }

    s->port = 6379;
    if (config(target, "port", value, sizeof value, &too_long)) {
        char *end = NULL;
        long port = strtol(value, &end, 10);
        if (too_long || end == value || *end != '\0' || port < 1 || port > 65535) {
            ERROR(ret, "config key `port`: expected a port number 1-65535, got \"%s\"", value);
            return 0;
        }
        s->port = (uint16_t)port;
    }

    s->has_password = config(target, "password", s->password, sizeof s->password, &too_long);
    if (s->has_password && (too_long || s->password[0] == '\0')) {
        ERROR(ret, "config key `password` must be 1-255 bytes");
        return 0;
    }

    s->timeout_ms = 1000;
    if (config(target, "timeout", value, sizeof value, &too_long)) {
        long ms = parse_millis(value);
        if (too_long || ms <= 0 || ms > 600000) {
            ERROR(ret, "config key `timeout`: expected a duration like \"500ms\" or \"2s\" "
                       "(at most 10 minutes), got \"%s\"", value);
            return 0;
        }
        s->timeout_ms = (uint32_t)ms;
    }
    return 1;
}

/* ---- the exchange ------------------------------------------------------ */

typedef struct {
    vigil_health_tcp_borrow_connection_t conn;
    const char *address;
    uint32_t timeout_ms;
} session_t;

static int send_all(session_t *s, const char *what, const uint8_t *data, size_t len,
                    outcome_t *ret) {
    checker_list_u8_t bytes = {(uint8_t *)data, len};
    error_code_t err;
    if (!vigil_health_tcp_method_connection_write(s->conn, &bytes, s->timeout_ms, &err)) {
        char context[320];
        snprintf(context, sizeof context, "send %s to %s", what, s->address);
        call_failed(ret, context, &err);
        return 0;
    }
    return 1;
}

/* Reads one line (up to CRLF) into `line`; 0 with a verdict on failure. */
static int read_line(session_t *s, const char *what, char *line, size_t size, outcome_t *ret) {
    size_t used = 0;
    for (;;) {
        char *crlf = used >= 2 ? memchr(line, '\n', used) : NULL;
        if (crlf) {
            *crlf = '\0';
            if (crlf > line && crlf[-1] == '\r') crlf[-1] = '\0';
            return 1;
        }
        if (used + 1 >= size) {
            RETRY(ret, "%s sent a line longer than %zu bytes in reply to %s", s->address,
                  size, what);
            return 0;
        }
        checker_list_u8_t chunk;
        error_code_t err;
        if (!vigil_health_tcp_method_connection_read(s->conn, (uint32_t)(size - 1 - used),
                                                      s->timeout_ms, &chunk, &err)) {
            char context[320];
            snprintf(context, sizeof context, "read %s reply from %s", what, s->address);
            call_failed(ret, context, &err);
            return 0;
        }
        if (chunk.len == 0) {
            RETRY(ret, "%s closed the connection instead of answering %s", s->address, what);
            return 0;
        }
        size_t n = chunk.len < size - 1 - used ? chunk.len : size - 1 - used;
        memcpy(line + used, chunk.ptr, n);
        used += n;
        line[used] = '\0';
        checker_list_u8_free(&chunk);
    }
}

/* The verdict on an error reply ("-CODE message"). */
static void judge_error(session_t *s, const char *what, const char *reply, outcome_t *ret) {
    if (strncmp(reply, "-NOAUTH", 7) == 0) {
        ERROR(ret, "%s requires a password: set `password` (%s answered %s)", s->address,
              what, reply);
    } else if (strncmp(reply, "-WRONGPASS", 10) == 0 ||
               strstr(reply, "invalid password") != NULL ||
               strstr(reply, "without any password configured") != NULL) {
        ERROR(ret, "%s rejected `password`: %s", s->address, reply);
    } else if (strncmp(reply, "-LOADING", 8) == 0) {
        RETRY(ret, "%s is loading its dataset: %s", s->address, reply);
    } else {
        RETRY(ret, "%s answered %s with %s", s->address, what, reply);
    }
}

static void probe(session_t *s, const settings_t *settings, outcome_t *ret) {
    char line[512];
    if (settings->has_password) {
        /* AUTH as a RESP array, so that any byte in the password is safe. */
        char auth[320];
        size_t plen = strlen(settings->password);
        int n = snprintf(auth, sizeof auth, "*2\r\n$4\r\nAUTH\r\n$%zu\r\n%s\r\n", plen,
                         settings->password);
        if (!send_all(s, "AUTH", (const uint8_t *)auth, (size_t)n, ret)) return;
        if (!read_line(s, "AUTH", line, sizeof line, ret)) return;
        if (line[0] == '-') {
            judge_error(s, "AUTH", line, ret);
            return;
        }
        if (strcmp(line, "+OK") != 0) {
            RETRY(ret, "%s answered AUTH with \"%s\", expected +OK", s->address, line);
            return;
        }
    }

    static const char ping[] = "*1\r\n$4\r\nPING\r\n";
    if (!send_all(s, "PING", (const uint8_t *)ping, sizeof ping - 1, ret)) return;
    if (!read_line(s, "PING", line, sizeof line, ret)) return;
    if (strcmp(line, "+PONG") == 0) {
        OK(ret);
    } else if (line[0] == '-') {
        judge_error(s, "PING", line, ret);
    } else {
        RETRY(ret, "%s answered PING with \"%s\", expected +PONG", s->address, line);
    }
}

void exports_checker_check(checker_target_t *target, checker_outcome_t *ret) {
    settings_t settings;
    if (read_settings(target, &settings, ret)) {
        char address[300];
        snprintf(address, sizeof address, "%s:%u", settings.host, settings.port);

        checker_string_t host;
        checker_string_set(&host, settings.host);
        vigil_health_tcp_own_connection_t conn;
        error_code_t err;
        if (vigil_health_tcp_static_connection_connect(&host, settings.port, settings.timeout_ms,
                                                       &conn, &err)) {
            session_t session = {vigil_health_tcp_borrow_connection(conn), address,
                                 settings.timeout_ms};
            probe(&session, &settings, ret);
            vigil_health_tcp_connection_drop_own(conn);
        } else {
            char context[320];
            snprintf(context, sizeof context, "connect %s", address);
            call_failed(ret, context, &err);
        }
    }
    checker_target_free(target);
}
