// heartbeat: a Vigil check in JavaScript (componentize-js).
//
// Reads a heartbeat file that the service rewrites as it works, through the
// host's `fs` capability, and judges what it says: a JSON object such as
//
//     {"time": 1767225600123, "state": "running", "message": "42 jobs queued"}
//
// Settings (`[checks.<phase>.config]` or `vigil check --config k=v`):
//
//   path          required; the heartbeat file (granted with `paths`)
//   max-age       the heartbeat may be at most this old; default "30s"
//   time-field    field with the heartbeat's time: epoch seconds, epoch
//                 milliseconds or an ISO 8601 string; default "time"
//                 (without it, the file's modification time is used)
//   state-field   field with the service's own state; default "state"
//   ok-states     comma-separated healthy states; default "ok,running,ready,idle"
//   fail-states   comma-separated states that mean the service gave up;
//                 default "failed,fatal"
//
// ok     fresh, in an ok state
// retry  missing, not JSON (perhaps half-written), stale, another state
// error  bad settings, a path that is not granted, a fail state
//
// Build: `make examples` (see docs/writing-checks.md).

import { stat, read } from 'vigil:health/fs@0.1.2';
import { log } from 'vigil:health/log@0.1.2';

const KEYS = ['path', 'max-age', 'time-field', 'state-field', 'ok-states', 'fail-states'];
const MAX_BYTES = 64 * 1024;

class Verdict {
    constructor(outcome) {
        this.outcome = outcome;
    }
}
const retry = (message) => new Verdict({ tag: 'retry', val: message });
const error = (message) => new Verdict({ tag: 'error', val: message });

const UNIT_MS = { ms: 1, s: 1000, m: 60000, h: 3600000 };

/** "500ms", "30s", "1m30s" -> milliseconds, as vigil-sdk parses them. */
function parseDuration(key, text) {
    const trimmed = text.trim();
    const parts = [...trimmed.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
    if (!trimmed || parts.map((p) => p[0]).join('') !== trimmed) {
        throw error(`config key \`${key}\`: expected a duration like "500ms", "30s" or "1m30s", got "${text}"`);
    }
    return parts.reduce((sum, p) => sum + Number(p[1]) * UNIT_MS[p[2]], 0);
}

function list(text) {
    return new Set(text.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s));
}

function settingsFrom(target) {
    const config = new Map(target.config); // the last value wins
    for (const key of config.keys()) {
        if (!KEYS.includes(key)) {
            throw error(`unknown config key \`${key}\` (known keys: ${KEYS.join(', ')})`);
        }
    }
    const path = (config.get('path') ?? '').trim();
    if (!path) {
        throw error('config key `path` is required');
    }
    return {
        path,
        maxAgeMs: parseDuration('max-age', config.get('max-age') ?? '30s'),
        timeField: config.get('time-field') ?? 'time',
        stateField: config.get('state-field') ?? 'state',
        okStates: list(config.get('ok-states') ?? 'ok,running,ready,idle'),
        failStates: list(config.get('fail-states') ?? 'failed,fatal'),
    };
}

/** Epoch milliseconds from a number (seconds or milliseconds) or a date string. */
function epochMs(value) {
    if (typeof value === 'number' && Number.isFinite(value)) {
        return value < 1e11 ? value * 1000 : value;
    }
    if (typeof value === 'string') {
        const parsed = Date.parse(value);
        return Number.isNaN(parsed) ? null : parsed;
    }
    return null;
}

function formatAge(ms) {
    const s = ms / 1000;
    if (s < 1) return `${Math.round(ms)}ms`;
    if (s < 120) return `${s.toFixed(1)}s`;
    if (s < 7200) return `${Math.round(s / 60)}m`;
    if (s < 172800) return `${Math.round(s / 3600)}h`;
    return `${Math.round(s / 86400)}d`;
}

/** A failed capability call: denied and invalid need new grants or settings. */
function callFailed(what, e) {
    const code = e?.payload ?? e;
    if (code?.tag === 'not-found') {
        return retry(`${what}: no heartbeat yet (the file does not exist)`);
    }
    const text = code?.val !== undefined ? `${code.tag}: ${code.val}` : String(code?.tag ?? e);
    return code?.tag === 'denied' || code?.tag === 'invalid'
        ? error(`${what}: ${text}`)
        : retry(`${what}: ${text}`);
}

/** The verdict on a heartbeat's content; `now` and `mtime` in epoch ms. */
function judge(settings, text, now, mtime) {
    const { path } = settings;
    let beat;
    try {
        beat = JSON.parse(text);
    } catch (e) {
        throw retry(`${path}: not JSON yet (${e.message})`);
    }
    if (beat === null || typeof beat !== 'object' || Array.isArray(beat)) {
        throw retry(`${path}: expected a JSON object`);
    }
    const state = beat[settings.stateField];
    const note = typeof beat.message === 'string' ? `: ${beat.message.slice(0, 200)}` : '';
    if (state !== undefined) {
        const s = String(state).toLowerCase();
        if (settings.failStates.has(s)) {
            throw error(`${path}: the service reports state "${state}"${note}`);
        }
        if (!settings.okStates.has(s)) {
            throw retry(`${path}: the service reports state "${state}"${note}`);
        }
    }
    let at = mtime;
    if (beat[settings.timeField] !== undefined) {
        at = epochMs(beat[settings.timeField]);
        if (at === null) {
            throw retry(`${path}: \`${settings.timeField}\` is not a time: ${JSON.stringify(beat[settings.timeField])}`);
        }
    }
    const age = now - at;
    if (age > settings.maxAgeMs) {
        throw retry(`${path}: last heartbeat ${formatAge(age)} ago (max-age ${formatAge(settings.maxAgeMs)})`);
    }
}

export function check(target) {
    try {
        const settings = settingsFrom(target);
        let meta;
        let bytes;
        try {
            meta = stat(settings.path);
            bytes = read(settings.path, MAX_BYTES);
        } catch (e) {
            throw callFailed(`read ${settings.path}`, e);
        }
        // The host's clock: modification time plus the age it measured.
        const mtime = Number(meta.modifiedMs);
        const now = mtime + Number(meta.ageMs);
        judge(settings, new TextDecoder().decode(bytes), now, mtime);
        log('debug', `${settings.path}: fresh`);
        return { tag: 'ok' };
    } catch (e) {
        if (e instanceof Verdict) {
            return e.outcome;
        }
        return { tag: 'retry', val: `heartbeat check failed: ${e}` };
    }
}
