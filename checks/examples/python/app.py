"""json_health: a Vigil check in Python (componentize-py).

GETs a JSON health endpoint through the host's `http` capability and
judges the overall status, the status of each component, and the latency.

Settings (`[checks.<phase>.config]` or `vigil check --config k=v`):

  url             required, http:// or https://
  status-field    dotted path of the overall status; default "status"
  components      dotted path of an object of component statuses, e.g.
                  "checks"; each value is a status string, an object with a
                  "status" field, or a list of those (as in the IETF health
                  check draft); default: none
  ok-values       comma-separated statuses that count as healthy;
                  default "ok,pass,up,healthy"
  latency-budget  a response slower than this is `retry`, e.g. "200ms"
  timeout         request deadline; default "2s"

ok     2xx, the overall status and every component healthy, within budget
retry  refused, timed out, another status, not JSON, a field missing or
       unhealthy, over the latency budget
error  bad settings, a destination that is not granted

Needs the grant http://HOST:PORT. Build: `make examples` (see
docs/writing-checks.md).
"""

import json
import re
import time

import wit_world
from componentize_py_types import Err
from wit_world.imports import http, log
from wit_world.imports.types import (
    ErrorCode_Denied,
    ErrorCode_Invalid,
    ErrorCode_Io,
    ErrorCode_NotFound,
    ErrorCode_Refused,
    ErrorCode_Timeout,
    Outcome_Error,
    Outcome_Ok,
    Outcome_Retry,
    Target,
)

KEYS = ("url", "status-field", "components", "ok-values", "latency-budget", "timeout")


class Verdict(Exception):
    """Raised anywhere to end the check with this outcome."""

    def __init__(self, outcome):
        super().__init__(outcome)
        self.outcome = outcome


def retry(message):
    return Verdict(Outcome_Retry(message))


def error(message):
    return Verdict(Outcome_Error(message))


# ---- settings ---------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


def parse_duration(key, text):
    """'500ms', '2s', '1m30s' -> milliseconds, as vigil-sdk parses them."""
    text = text.strip()
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if not m:
            break
        total += float(m.group(1)) * _UNIT_MS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise error(
            f'config key `{key}`: expected a duration like "500ms", "2s" or "1m30s", '
            f'got "{text}"'
        )
    return int(total)


class Settings:
    def __init__(self, target: Target):
        config = {}
        for key, value in target.config:
            config[key] = value  # the last value wins
        unknown = sorted(set(config) - set(KEYS))
        if unknown:
            raise error(f"unknown config key `{unknown[0]}` (known keys: {', '.join(KEYS)})")
        self.url = config.get("url", "").strip()
        if not self.url:
            raise error("config key `url` is required")
        if not self.url.startswith(("http://", "https://")):
            raise error(f'config key `url`: expected an http:// or https:// URL, got "{self.url}"')
        self.status_field = config.get("status-field", "status").strip()
        self.components = config.get("components", "").strip() or None
        self.ok_values = {
            v.strip().lower() for v in config.get("ok-values", "ok,pass,up,healthy").split(",")
        } - {""}
        if not self.ok_values:
            raise error("config key `ok-values` must list at least one status")
        budget = config.get("latency-budget")
        self.budget_ms = parse_duration("latency-budget", budget) if budget is not None else None
        self.timeout_ms = parse_duration("timeout", config.get("timeout", "2s"))
        if self.timeout_ms <= 0:
            raise error("config key `timeout` must be more than 0ms")


# ---- judging (plain values, testable outside wasm) ---------------------------


def lookup(document, path):
    """The value at a dotted path ('checks.db.status', 'items.0'), or raise KeyError."""
    value = document
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise KeyError(path)
    return value


def status_of(value):
    """A component's status: a string, {"status": ...}, or a list of those (worst wins)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return status_of(value.get("status")) if "status" in value else []
    if isinstance(value, list):
        return [s for item in value for s in status_of(item)]
    return []


def judge(settings, status, body, elapsed_ms):
    """The outcome for an HTTP response: raises Verdict unless healthy."""
    url = settings.url
    if not 200 <= status < 300:
        snippet = body[:120].decode("utf-8", "replace")
        raise retry(f"GET {url}: status {status}: {snippet!r}")
    if settings.budget_ms is not None and elapsed_ms > settings.budget_ms:
        raise retry(
            f"GET {url}: answered in {elapsed_ms} ms, over the latency budget of "
            f"{settings.budget_ms} ms"
        )
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise retry(f"GET {url}: the body is not JSON ({e})") from None
    try:
        overall = lookup(document, settings.status_field)
    except KeyError:
        raise retry(f"GET {url}: no `{settings.status_field}` field in the JSON body") from None
    if str(overall).lower() not in settings.ok_values:
        raise retry(f"GET {url}: {settings.status_field} is {overall!r}")
    if settings.components:
        try:
            components = lookup(document, settings.components)
        except KeyError:
            raise retry(f"GET {url}: no `{settings.components}` field in the JSON body") from None
        if not isinstance(components, dict):
            raise retry(f"GET {url}: `{settings.components}` is not an object")
        unhealthy = []
        for name, value in sorted(components.items()):
            statuses = status_of(value)
            bad = [s for s in statuses if str(s).lower() not in settings.ok_values]
            if not statuses or bad:
                unhealthy.append(f"{name}={(bad or ['no status'])[0]}")
        if unhealthy:
            raise retry(f"GET {url}: unhealthy {settings.components}: {', '.join(unhealthy)}")


# ---- the check ----------------------------------------------------------------


def describe(code):
    if isinstance(code, ErrorCode_Denied):
        return f"denied: {code.value}"
    if isinstance(code, ErrorCode_Invalid):
        return f"invalid: {code.value}"
    if isinstance(code, ErrorCode_Io):
        return f"I/O error: {code.value}"
    if isinstance(code, ErrorCode_Timeout):
        return "timed out"
    if isinstance(code, ErrorCode_Refused):
        return "connection refused"
    if isinstance(code, ErrorCode_NotFound):
        return "not found"
    return repr(code)


class WitWorld(wit_world.WitWorld):
    def check(self, target: Target):
        try:
            settings = Settings(target)
            request = http.Request(
                method="GET",
                url=settings.url,
                headers=[("accept", "application/json")],
                body=None,
                timeout_ms=settings.timeout_ms,
                follow_redirects=True,
            )
            started = time.monotonic()
            try:
                response = http.send(request)
            except Err as e:
                message = f"GET {settings.url}: {describe(e.value)}"
                if isinstance(e.value, (ErrorCode_Denied, ErrorCode_Invalid)):
                    raise error(message) from None
                raise retry(message) from None
            elapsed_ms = int((time.monotonic() - started) * 1000)
            judge(settings, response.status, bytes(response.body), elapsed_ms)
            log.log(log.Level.DEBUG, f"GET {settings.url}: healthy in {elapsed_ms} ms")
            return Outcome_Ok()
        except Verdict as v:
            return v.outcome
