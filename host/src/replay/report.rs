//! What a replay found: each decision side by side, the totals of both
//! sides, and what could not be compared; as a table or as JSON.

use serde::Serialize;

use crate::untrusted;

/// What a policy did at one point of a service's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Decision {
    /// Start the child again after this delay.
    Restart { delay_ms: u64 },
    /// Give up: the service is `failed`.
    GiveUp { reason: String },
    /// Leave the service down (`exited`, or `stopped` by an operator).
    StayDown,
    /// Stop the running child.
    Stop { cause: String, reason: String },
    /// Leave the running child alone.
    Keep,
    /// Still waiting for an answer (a loader's, or the journal ends).
    Undecided,
}

impl Decision {
    /// The same decision: the same restart delay, both give up (in their
    /// own words), both stay down, both keep, or both stop the child
    /// (whoever asks: the built-in policy's `liveness` and a loader's
    /// `loader` stop alike).
    pub fn same_as(&self, other: &Decision) -> bool {
        match (self, other) {
            (Decision::Restart { delay_ms: a }, Decision::Restart { delay_ms: b }) => a == b,
            (Decision::GiveUp { .. }, Decision::GiveUp { .. }) => true,
            (Decision::Stop { .. }, Decision::Stop { .. }) => true,
            (a, b) => a == b,
        }
    }

    fn text(&self) -> String {
        match self {
            Decision::Restart { delay_ms } => format!(
                "restart after {}",
                super::driver::human(std::time::Duration::from_millis(*delay_ms))
            ),
            Decision::GiveUp { reason } => format!("give up: {reason}"),
            Decision::StayDown => "stay down".into(),
            Decision::Stop { cause, reason } => format!("stop ({cause}): {reason}"),
            Decision::Keep => "keep running".into(),
            Decision::Undecided => "undecided".into(),
        }
    }
}

/// One point where a policy decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// When the record has it.
    pub at: String,
    /// When it falls on the candidate's (shifted) clock.
    pub candidate_at: String,
    /// What happened, in words (`exited (code 1) after 312ms`).
    pub event: String,
    pub recorded: Decision,
    pub candidate: Decision,
    pub matches: bool,
}

/// One side's totals over the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Restarts scheduled.
    pub restarts: u32,
    /// When it gave up, if it did.
    pub gave_up_at: Option<String>,
    /// Time with no child between a child's end and the next start (or
    /// the end of the window), stops asked by an operator or a shutdown
    /// left out.
    pub downtime_ms: u64,
    /// False when the candidate parted from the record and what its
    /// children did after is not known: `downtime_ms` is then a lower
    /// bound.
    pub downtime_known: bool,
}

/// The whole replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub service: String,
    /// `built-in policy (PATH)` or `loader PATH`.
    pub candidate: String,
    /// The window replayed.
    pub from: Option<String>,
    pub to: Option<String>,
    /// Decisions compared, and how many differ.
    pub decisions: usize,
    pub differences: usize,
    /// Every decision matched: `vigil replay` exits 0.
    pub matches: bool,
    pub steps: Vec<Step>,
    pub recorded: Summary,
    #[serde(rename = "candidate_totals")]
    pub candidate_summary: Summary,
    /// What the replay could not compare, and why.
    pub not_compared: Vec<String>,
}

impl Report {
    /// The report as a table for a terminal. Reasons quote what checks
    /// and services said: escaped.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let window = match (&self.from, &self.to) {
            (Some(from), Some(to)) => format!("{from} .. {to}"),
            _ => "an empty window".into(),
        };
        out.push_str(&format!(
            "replay of {} ({window})\ncandidate: {}\n\n",
            untrusted::line(&self.service),
            untrusted::line(&self.candidate)
        ));
        if self.steps.is_empty() {
            out.push_str("no decision to compare (no child of this service ended in the window)\n");
        } else {
            let cut = |s: String| -> String {
                let s = untrusted::line(&s).into_owned();
                if s.chars().count() > 44 {
                    format!("{}…", s.chars().take(43).collect::<String>())
                } else {
                    s
                }
            };
            out.push_str(&format!(
                "{:<24} {:<44} {:<44} {:<44}\n",
                "AT", "EVENT", "RECORDED", "CANDIDATE"
            ));
            for step in &self.steps {
                let time = step.at.get(11..23).unwrap_or(&step.at).to_string();
                out.push_str(&format!(
                    "{:<24} {:<44} {:<44} {:<44}{}\n",
                    time,
                    cut(step.event.clone()),
                    cut(step.recorded.text()),
                    cut(step.candidate.text()),
                    if step.matches { "" } else { "  DIFFERS" }
                ));
            }
        }
        out.push('\n');
        for (side, s) in [
            ("recorded", &self.recorded),
            ("candidate", &self.candidate_summary),
        ] {
            out.push_str(&format!(
                "{side:<10} {} restart(s), {}, downtime {}{}\n",
                s.restarts,
                match &s.gave_up_at {
                    Some(at) => format!("gave up at {at}"),
                    None => "never gave up".into(),
                },
                super::driver::human(std::time::Duration::from_millis(s.downtime_ms)),
                if s.downtime_known {
                    ""
                } else {
                    " at least (it parted from the record)"
                }
            ));
        }
        for note in &self.not_compared {
            out.push_str(&format!("not compared: {}\n", untrusted::line(note)));
        }
        out.push_str(&if self.matches {
            format!("same decisions ({} compared)\n", self.decisions)
        } else {
            format!(
                "the decisions differ ({} of {} compared)\n",
                self.differences, self.decisions
            )
        });
        out
    }
}
