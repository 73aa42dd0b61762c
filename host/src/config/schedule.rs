//! Scheduled jobs: `every = "10m"` or `schedule = "*/5 * * * *"` (cron, in
//! `timezone`, default UTC) runs a one-shot service at each due time, with
//! `overlap` deciding what a due time does while the previous run is still
//! going, `timeout` bounding each run and `catch-up` running once at start
//! for due times missed while Vigil was down.

use std::time::{Duration, SystemTime};

use super::model::{RestartMode, RestartPolicy};
use super::problems::Collector;
use super::resolve::duration_field;

/// What a due time does while the previous run still goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overlap {
    /// Skip this run (journaled as a warning).
    #[default]
    Skip,
    /// Run once the previous run ends (at most one run waits).
    Queue,
    /// Kill the previous run (its whole group) and start this one.
    Kill,
}

impl Overlap {
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Skip => "skip",
            Overlap::Queue => "queue",
            Overlap::Kill => "kill",
        }
    }
}

/// A cron expression in a time zone (`schedule`, `timezone`).
#[derive(Debug, Clone)]
pub struct Cron {
    /// As written, for status and messages.
    pub text: String,
    /// The zone's name as written (`UTC` when none was).
    pub zone_name: String,
    cron: croner::Cron,
    zone: jiff::tz::TimeZone,
}

/// Two schedules are the same when written the same: what a reload compares.
impl PartialEq for Cron {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text && self.zone_name == other.zone_name
    }
}

impl Eq for Cron {}

impl Cron {
    /// Parse `text` (5 fields, or 6 with seconds first; croner's syntax:
    /// ranges, steps, names, `L`, `W`, `#`, `@daily`...) in zone `zone`
    /// (an IANA name such as `Europe/Paris`).
    pub fn parse(text: &str, zone: &str) -> Result<Cron, String> {
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(text)
            .map_err(|e| format!("not a cron expression: {e}"))?;
        let tz = jiff::tz::TimeZone::get(zone).map_err(|e| format!("unknown time zone: {e}"))?;
        Ok(Cron {
            text: text.to_string(),
            zone_name: zone.to_string(),
            cron,
            zone: tz,
        })
    }

    /// The first due time strictly after `now`: a pure function of the
    /// expression, the zone and `now`. `None` when there is none (an
    /// expression that never matches, or past year 9999).
    pub fn next_after(&self, now: SystemTime) -> Option<SystemTime> {
        let now = jiff::Timestamp::try_from(now).ok()?;
        let next = self
            .cron
            .find_next_occurrence(&now.to_zoned(self.zone.clone()), false)
            .ok()?;
        Some(SystemTime::from(next.timestamp()))
    }
}

/// When a job is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    /// `every`: a period, the first due time one period after load.
    Every(Duration),
    /// `schedule`: a cron expression in a time zone.
    Cron(Box<Cron>),
}

/// A scheduled job's timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    pub when: When,
    pub overlap: Overlap,
    /// A run still going after this is stopped (stop-signal, then SIGKILL
    /// of the group after stop-grace).
    pub timeout: Option<Duration>,
    /// `catch-up = true`: at Vigil's start, one run at once when a due
    /// time passed since the job's last run in the journal.
    pub catch_up: bool,
}

impl JobSpec {
    /// The schedule in words, for status: `every 10m`, `*/5 * * * * UTC`.
    pub fn describe(&self) -> String {
        match &self.when {
            When::Every(every) => format!("every {}", crate::units::format_duration(*every)),
            When::Cron(cron) => format!("{} {}", cron.text, cron.zone_name),
        }
    }

    /// The due time missed between the job's last run `last` and `now`, if
    /// any (the first one: one catch-up run stands for all of them).
    pub fn missed(&self, last: SystemTime, now: SystemTime) -> Option<SystemTime> {
        let due = match &self.when {
            When::Every(every) => last.checked_add(*every)?,
            When::Cron(cron) => cron.next_after(last)?,
        };
        (due <= now).then_some(due)
    }
}

/// The raw job keys.
pub(super) struct RawJob {
    pub every: Option<String>,
    pub schedule: Option<String>,
    pub timezone: Option<String>,
    pub overlap: Option<String>,
    pub timeout: Option<String>,
    pub catch_up: Option<bool>,
}

/// Resolve the job keys. A job is a one-shot: `restart = "never"` is
/// implied, and any other `restart` is a problem (`restart_written`: the
/// manifest set one).
pub(super) fn resolve_job(
    raw: RawJob,
    restart_written: Option<&str>,
    restart: &mut RestartPolicy,
    c: &mut Collector<'_>,
) -> Option<JobSpec> {
    let RawJob {
        every,
        schedule,
        timezone,
        overlap,
        timeout,
        catch_up,
    } = raw;
    if every.is_some() && schedule.is_some() {
        c.push(
            "schedule",
            "both `schedule` and `every`",
            "keep one: `schedule` for cron times, `every` for a period",
        );
    }
    if schedule.is_none() && timezone.is_some() {
        c.push(
            "timezone",
            "`timezone` is for `schedule`",
            "add `schedule = \"0 3 * * *\"`, or remove it",
        );
    }
    let when = match (every, schedule) {
        (_, Some(text)) => {
            let zone = timezone.as_deref().unwrap_or("UTC");
            match Cron::parse(&text, zone) {
                Ok(cron) => Some(When::Cron(Box::new(cron))),
                Err(e) => {
                    let (field, fix) = if e.starts_with("unknown time zone") {
                        ("timezone", "an IANA name, e.g. \"Europe/Paris\" or \"UTC\"")
                    } else {
                        (
                            "schedule",
                            "5 fields: minute (0-59) hour (0-23) day (1-31) month (1-12, JAN-DEC) \
                             weekday (0-7, SUN-SAT), e.g. \"30 6 * * MON-FRI\"; or 6 with \
                             seconds (0-59) first",
                        )
                    };
                    c.push(field, e, fix);
                    Some(When::Every(Duration::from_secs(60)))
                }
            }
        }
        (Some(text), None) => {
            let every = duration_field(c, "every", Some(&text), Duration::from_secs(60));
            if every.is_zero() {
                c.push("every", "a zero period", "give a period, e.g. \"10m\"");
                Some(When::Every(Duration::from_secs(60)))
            } else {
                Some(When::Every(every))
            }
        }
        (None, None) => None,
    };
    let Some(when) = when else {
        for (key, set) in [
            ("overlap", overlap.is_some()),
            ("timeout", timeout.is_some()),
            ("catch-up", catch_up.is_some()),
        ] {
            if set {
                c.push(
                    key,
                    format!("`{key}` is for scheduled jobs"),
                    "add `every = \"10m\"` or `schedule = \"*/5 * * * *\"`, or remove it",
                );
            }
        }
        return None;
    };
    let overlap = match overlap.as_deref() {
        None => Overlap::Skip,
        Some("skip") => Overlap::Skip,
        Some("queue") => Overlap::Queue,
        Some("kill") => Overlap::Kill,
        Some(other) => {
            c.push(
                "overlap",
                format!("unknown overlap `{other}`"),
                "use \"skip\", \"queue\" or \"kill\"",
            );
            Overlap::Skip
        }
    };
    let timeout = timeout
        .as_deref()
        .map(|t| duration_field(c, "timeout", Some(t), Duration::from_secs(60)));
    if let Some(r) = restart_written.filter(|r| *r != "never") {
        c.push(
            "restart",
            format!("a scheduled job does not restart (`restart = \"{r}\"`)"),
            "remove `restart` (a job is `restart = \"never\"`; its schedule runs it again)",
        );
    }
    restart.mode = RestartMode::Never;
    Some(JobSpec {
        when,
        overlap,
        timeout,
        catch_up: catch_up.unwrap_or(false),
    })
}

/// The first due time strictly after `now`, counting periods of `every`
/// from `origin` (so a late wake-up does not drift the schedule, and
/// missed due times collapse into one). All in one monotonic unit.
pub fn next_due(origin: Duration, every: Duration, now: Duration) -> Duration {
    if every.is_zero() || now < origin {
        return origin;
    }
    let periods = (now - origin).as_nanos() / every.as_nanos() + 1;
    let periods = u32::try_from(periods).unwrap_or(u32::MAX);
    origin + every.saturating_mul(periods)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_due_counts_whole_periods_from_the_origin() {
        let s = Duration::from_secs;
        assert_eq!(next_due(s(100), s(10), s(50)), s(100));
        assert_eq!(next_due(s(100), s(10), s(100)), s(110));
        assert_eq!(next_due(s(100), s(10), s(105)), s(110));
        // Late by three periods: the next one, not three catch-ups.
        assert_eq!(next_due(s(100), s(10), s(139)), s(140));
    }

    /// A UTC instant written as RFC 3339.
    fn at(text: &str) -> SystemTime {
        SystemTime::from(text.parse::<jiff::Timestamp>().expect("a test timestamp"))
    }

    fn next(expr: &str, zone: &str, now: &str) -> String {
        let cron = Cron::parse(expr, zone).expect("a test expression");
        let due = cron.next_after(at(now)).expect("a next due time");
        jiff::Timestamp::try_from(due)
            .expect("in range")
            .to_string()
    }

    #[test]
    fn next_due_times_on_known_dates_in_utc() {
        // Every five minutes: the next multiple, strictly after now.
        assert_eq!(
            next("*/5 * * * *", "UTC", "2026-12-07T04:12:31Z"),
            "2026-12-07T04:15:00Z"
        );
        assert_eq!(
            next("*/5 * * * *", "UTC", "2026-12-07T04:15:00Z"),
            "2026-12-07T04:20:00Z"
        );
        // Six fields: seconds first.
        assert_eq!(
            next("* * * * * *", "UTC", "2026-12-07T04:12:31.400Z"),
            "2026-12-07T04:12:32Z"
        );
        // 03:00 on the 1st of each month, from the last day of a year.
        assert_eq!(
            next("0 3 1 * *", "UTC", "2026-12-31T23:59:59Z"),
            "2027-01-01T03:00:00Z"
        );
        // Mondays at 09:30 (2026-12-07 is a Monday, already past 09:30).
        assert_eq!(
            next("30 9 * * MON", "UTC", "2026-12-07T10:00:00Z"),
            "2026-12-14T09:30:00Z"
        );
    }

    /// 09:00 in Paris is 08:00 UTC in winter and 07:00 UTC in summer: the
    /// same expression moves in UTC across the change (2026-03-29).
    #[test]
    fn a_zone_keeps_local_time_across_a_dst_change() {
        assert_eq!(
            next("0 9 * * *", "Europe/Paris", "2026-03-28T12:00:00Z"),
            "2026-03-29T07:00:00Z"
        );
        assert_eq!(
            next("0 9 * * *", "Europe/Paris", "2026-03-27T12:00:00Z"),
            "2026-03-28T08:00:00Z"
        );
        // New York falls back on 2026-11-01: 09:00 EDT is 13:00 UTC, then
        // 09:00 EST is 14:00 UTC.
        assert_eq!(
            next("0 9 * * *", "America/New_York", "2026-10-31T12:00:00Z"),
            "2026-10-31T13:00:00Z"
        );
        assert_eq!(
            next("0 9 * * *", "America/New_York", "2026-10-31T14:00:00Z"),
            "2026-11-01T14:00:00Z"
        );
    }

    /// Times that do not exist (02:30 on the spring-forward night in
    /// Paris) or exist twice (01:30 on New York's fall-back night).
    #[test]
    fn skipped_and_repeated_local_times() {
        // 02:00-03:00 does not exist on 2026-03-29 in Paris: that day's
        // 02:30 run happens at the first instant after the gap, 03:00 CEST.
        assert_eq!(
            next("30 2 * * *", "Europe/Paris", "2026-03-29T00:00:00Z"),
            "2026-03-29T01:00:00Z"
        );
        // 01:30 happens twice on 2026-11-01 in New York (EDT then EST):
        // the first one runs, and the job runs once that night.
        let first = next("30 1 * * *", "America/New_York", "2026-11-01T04:00:00Z");
        assert_eq!(first, "2026-11-01T05:30:00Z");
        assert_eq!(
            next("30 1 * * *", "America/New_York", &first),
            "2026-11-02T06:30:00Z"
        );
    }

    /// Berlin's 2026 changes: 02:00-03:00 does not exist on 2026-03-29
    /// (CET to CEST), 02:00-03:00 happens twice on 2026-10-25 (CEST, then
    /// CET). A daily 09:00 keeps its local time; 02:30 runs at 03:00 on
    /// the spring night and once (the first, CEST) on the autumn night.
    /// Jobs on a wildcard hour keep their real spacing through Berlin's
    /// repeated hour (02:00-03:00 twice on 2026-10-25): an hourly job
    /// runs at 02:00 CEST and again at 02:00 CET, one every 20 minutes
    /// runs six times in those two hours, as cron does. Only a job at a
    /// fixed local time runs once (berlin_dst_gap_and_repeat).
    #[test]
    fn wildcard_hours_keep_their_spacing_through_an_autumn_repeat() {
        let z = "Europe/Berlin";
        let runs = |expr: &str, from: &str, n: usize| {
            let mut at = from.to_string();
            (0..n)
                .map(|_| {
                    at = next(expr, z, &at);
                    at.clone()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            runs("0 * * * *", "2026-10-24T23:30:00Z", 4),
            [
                "2026-10-25T00:00:00Z", // 02:00 CEST
                "2026-10-25T01:00:00Z", // 02:00 CET, the repeat
                "2026-10-25T02:00:00Z", // 03:00 CET
                "2026-10-25T03:00:00Z",
            ]
        );
        assert_eq!(
            runs("*/20 * * * *", "2026-10-24T23:50:00Z", 7),
            [
                "2026-10-25T00:00:00Z",
                "2026-10-25T00:20:00Z",
                "2026-10-25T00:40:00Z",
                "2026-10-25T01:00:00Z",
                "2026-10-25T01:20:00Z",
                "2026-10-25T01:40:00Z",
                "2026-10-25T02:00:00Z",
            ]
        );
    }

    #[test]
    fn berlin_dst_gap_and_repeat() {
        let z = "Europe/Berlin";
        assert_eq!(
            next("0 9 * * *", z, "2026-03-28T12:00:00Z"),
            "2026-03-29T07:00:00Z"
        );
        assert_eq!(
            next("0 9 * * *", z, "2026-10-24T12:00:00Z"),
            "2026-10-25T08:00:00Z"
        );
        // The gap: 02:30 does not exist, the run is at 03:00 CEST; the
        // next day's is 02:30 CEST again.
        let gap = next("30 2 * * *", z, "2026-03-29T00:00:00Z");
        assert_eq!(gap, "2026-03-29T01:00:00Z");
        assert_eq!(next("30 2 * * *", z, &gap), "2026-03-30T00:30:00Z");
        // The repeat: 02:30 CEST (00:30 UTC) runs, 02:30 CET (01:30 UTC)
        // does not; the next run is the next day's 02:30 CET.
        let first = next("30 2 * * *", z, "2026-10-25T00:00:00Z");
        assert_eq!(first, "2026-10-25T00:30:00Z");
        assert_eq!(next("30 2 * * *", z, &first), "2026-10-26T01:30:00Z");
        // Every 20 minutes straight through the gap: 01:40 CET, then
        // 03:00 CEST (02:00 and 02:20 ... do not exist), 03:20 CEST.
        let before = next("*/20 * * * *", z, "2026-03-29T00:30:00Z");
        assert_eq!(before, "2026-03-29T00:40:00Z");
        let after = next("*/20 * * * *", z, &before);
        assert_eq!(after, "2026-03-29T01:00:00Z");
        assert_eq!(next("*/20 * * * *", z, &after), "2026-03-29T01:20:00Z");
    }

    /// New York springs forward on 2026-03-08 (02:00 EST to 03:00 EDT).
    #[test]
    fn new_york_spring_gap() {
        let z = "America/New_York";
        assert_eq!(
            next("30 2 * * *", z, "2026-03-08T06:00:00Z"),
            "2026-03-08T07:00:00Z"
        );
        assert_eq!(
            next("0 12 * * *", z, "2026-03-07T18:00:00Z"),
            "2026-03-08T16:00:00Z"
        );
    }

    /// A bad `schedule` or `timezone` in a manifest: a problem naming the
    /// manifest file, the field and the fix (what `vigil validate` shows).
    #[test]
    fn bad_schedules_in_a_manifest_name_file_field_and_fix() {
        let t = crate::test_support::TempDir::new("cfg-cron");
        let write = |name: &str, extra: &str| {
            let d = t.0.join(name);
            std::fs::create_dir_all(&d).expect("mkdir");
            std::fs::write(
                d.join(super::super::MANIFEST),
                format!("command = [\"true\"]\n{extra}"),
            )
            .expect("write manifest");
        };
        write("expr", "schedule = \"61 * * * *\"\n");
        write("fields", "schedule = \"* * *\"\n");
        write(
            "zone",
            "schedule = \"* * * * *\"\ntimezone = \"Europe/Atlantis\"\n",
        );
        write("both", "schedule = \"* * * * *\"\nevery = \"1m\"\n");
        write("lonely", "timezone = \"UTC\"\n");
        write(
            "good",
            "schedule = \"0 3 * * *\"\ntimezone = \"Europe/Berlin\"\n",
        );
        let report = super::super::load_dir(&t.0).expect_err("bad schedules");
        let said: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
        let find = |dir: &str, field: &str, problem: &str, fix: &str| {
            let file = format!("{dir}/service.toml:{field}: ");
            assert!(
                said.iter().any(|p| p.contains(&file)
                    && p.contains(problem)
                    && p.contains(&format!("(fix: {fix}"))),
                "{file} {problem} {fix}: {said:#?}"
            );
        };
        find("expr", "schedule", "not a cron expression", "5 fields");
        find("fields", "schedule", "not a cron expression", "5 fields");
        find("zone", "timezone", "unknown time zone", "an IANA name");
        find(
            "both",
            "schedule",
            "both `schedule` and `every`",
            "keep one",
        );
        find(
            "lonely",
            "timezone",
            "`timezone` is for `schedule`",
            "add `schedule",
        );
        assert!(!said.iter().any(|p| p.contains("good/")), "{said:#?}");
        assert_eq!(said.len(), 5, "{said:#?}");
    }

    #[test]
    fn bad_expressions_and_zones_are_refused() {
        assert!(Cron::parse("61 * * * *", "UTC").is_err());
        assert!(Cron::parse("* * *", "UTC").is_err());
        let zone = Cron::parse("* * * * *", "Europe/Atlantis").expect_err("no such zone");
        assert!(zone.starts_with("unknown time zone"), "{zone}");
    }

    /// One catch-up run: the first due time after the last run, when it
    /// has passed.
    #[test]
    fn a_missed_due_time_is_the_first_after_the_last_run() {
        let job = |when| JobSpec {
            when,
            overlap: Overlap::Skip,
            timeout: None,
            catch_up: true,
        };
        let daily = job(When::Cron(Box::new(
            Cron::parse("0 3 * * *", "UTC").expect("valid"),
        )));
        assert_eq!(
            daily.missed(at("2026-12-01T04:00:00Z"), at("2026-12-07T12:00:00Z")),
            Some(at("2026-12-02T03:00:00Z"))
        );
        assert_eq!(
            daily.missed(at("2026-12-07T04:00:00Z"), at("2026-12-07T12:00:00Z")),
            None
        );
        let hourly = job(When::Every(Duration::from_secs(3600)));
        assert_eq!(
            hourly.missed(at("2026-12-07T10:00:00Z"), at("2026-12-07T11:00:00Z")),
            Some(at("2026-12-07T11:00:00Z"))
        );
        assert_eq!(
            hourly.missed(at("2026-12-07T10:30:00Z"), at("2026-12-07T11:00:00Z")),
            None
        );
    }
}
