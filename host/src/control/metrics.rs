//! `/metrics`: what Vigil knows, in the Prometheus (OpenMetrics) text
//! format, encoded by the official `prometheus-client` crate. Only
//! encoding: check metrics are recorded by the supervisor
//! (`supervisor::metrics`), the rest is read at each scrape.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `vigil_service_state` | gauge, 1 for the current state | service, state |
//! | `vigil_service_ready` | gauge | service |
//! | `vigil_service_restarts` (`_total`) | counter | service |
//! | `vigil_service_start_time_seconds` | gauge, current child's spawn | service |
//! | `vigil_service_pid` | gauge, a live child's pid | service, role (`current`, `successor`, `replaced`) |
//! | `vigil_service_cpu_seconds` (`_total`) | counter, CPU time in its cgroup | service |
//! | `vigil_service_memory_bytes` | gauge, memory charged to its cgroup | service |
//!
//! A replica's `vigil_service_*` series (`service="web@1"`) also carry its
//! index as `instance="1"`.
//! | `vigil_check_duration_seconds` | histogram | service, phase |
//! | `vigil_check_outcomes` (`_total`) | counter | service, phase, outcome |
//! | `vigil_wasm_memory_peak_bytes` | gauge, largest instance (memories and tables) a call grew to | |
//! | `vigil_wasm_calls_in_flight`, `vigil_wasm_call_slots` | gauge | |
//! | `vigil_wasm_instances_created` (`_total`) | counter, fresh instances (reused builtins add none) | |
//! | `process_start_time_seconds` | gauge | |

use std::time::SystemTime;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::supervisor::Supervisor;
use crate::wasm::Engine;

/// Every state a service can be in, for the state gauge.
const STATES: [&str; 9] = [
    "stopped", "waiting", "starting", "running", "ready", "stopping", "backoff", "exited", "failed",
];

/// The labels of a service's series: `service`, then `extra`, and for a
/// replica (`web@1`) its index as `instance` (Prometheus keeps a target's
/// own `instance` label and calls this one `exported_instance`, unless
/// the scrape has `honor_labels: true`).
fn service_labels<'a>(name: &'a str, extra: Option<(&'a str, &'a str)>) -> Vec<(&'a str, &'a str)> {
    let mut labels = vec![("service", name)];
    labels.extend(extra);
    if crate::config::replicas::split_name(name).is_some()
        && let Some((_, index)) = name.rsplit_once('@')
    {
        labels.push(("instance", index));
    }
    labels
}

/// Reads the supervisor and the engine at each scrape.
struct Live {
    sup: Supervisor,
    engine: Engine,
    process_start: f64,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Live")
    }
}

fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn gauge<V: prometheus_client::encoding::EncodeGaugeValue + Send + Sync + std::fmt::Debug>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: V,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    let m = encoder.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(m)
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snaps = self.sup.snapshots();
        {
            let mut m = encoder.encode_descriptor(
                "vigil_service_state",
                "1 for the state the service is in, 0 for the others",
                None,
                MetricType::Gauge,
            )?;
            for (name, snap) in &snaps {
                for state in STATES {
                    let labels = service_labels(name, Some(("state", state)));
                    let value = i64::from(snap.status.as_str() == state);
                    ConstGauge::new(value).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "vigil_service_ready",
                "1 while the service is ready",
                None,
                MetricType::Gauge,
            )?;
            for (name, snap) in &snaps {
                let labels = service_labels(name, None);
                let ready = i64::from(snap.status == crate::supervisor::state::Status::Ready);
                ConstGauge::new(ready).encode(m.encode_family(&labels)?)?;
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "vigil_service_restarts",
                "Restarts of the service since vigil started",
                None,
                MetricType::Counter,
            )?;
            for (name, snap) in &snaps {
                let labels = service_labels(name, None);
                ConstCounter::new(u64::from(snap.restarts)).encode(m.encode_family(&labels)?)?;
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "vigil_service_start_time_seconds",
                "When the service's current child was spawned, Unix seconds",
                None,
                MetricType::Gauge,
            )?;
            for (name, snap) in &snaps {
                if let Some(t) = snap.started_at {
                    let labels = service_labels(name, None);
                    ConstGauge::new(unix_secs(t)).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        {
            // One series per live child: outside a replace only `current`;
            // while a replace runs, `successor` (the new child being judged)
            // beside it, and after the switch `replaced` (the old child,
            // draining) until it is reaped.
            let mut m = encoder.encode_descriptor(
                "vigil_service_pid",
                "Pid of each live child of the service, by role: current, successor (a replace's new child), replaced (the old child draining)",
                None,
                MetricType::Gauge,
            )?;
            for (name, snap) in &snaps {
                let roles = [
                    ("current", snap.pid),
                    ("successor", snap.successor),
                    ("replaced", snap.predecessor),
                ];
                for (role, pid) in roles {
                    if let Some(pid) = pid {
                        let labels = [("service", name.as_str()), ("role", role)];
                        ConstGauge::new(i64::from(pid)).encode(m.encode_family(&labels)?)?;
                    }
                }
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "vigil_service_cpu_seconds",
                "CPU time used in the service's cgroup (every life), seconds",
                None,
                MetricType::Counter,
            )?;
            for (name, snap) in &snaps {
                let used = snap.cgroup.as_ref().and_then(|c| c.cpu_usage());
                if let Some(used) = used {
                    let labels = service_labels(name, None);
                    ConstCounter::new(used.as_secs_f64()).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "vigil_service_memory_bytes",
                "Memory charged to the service's cgroup now, bytes",
                None,
                MetricType::Gauge,
            )?;
            for (name, snap) in &snaps {
                if let Some(bytes) = snap.cgroup.as_ref().and_then(|c| c.memory_usage()) {
                    let labels = service_labels(name, None);
                    ConstGauge::new(bytes as i64).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut m = encoder.encode_descriptor(
                "vigil_job_last_success_timestamp_seconds",
                "When a scheduled job's last successful run ended (this instance), Unix seconds",
                None,
                MetricType::Gauge,
            )?;
            for (name, snap) in &snaps {
                if let Some(t) = snap.job.as_ref().and_then(|j| j.last_success) {
                    let labels = [("service", name.as_str())];
                    ConstGauge::new(unix_secs(t)).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        let stats = self.engine.stats();
        gauge(
            &mut encoder,
            "vigil_wasm_memory_peak_bytes",
            "Largest a check or loader instance has grown to: all its linear memories and tables",
            stats.memory_peak_bytes as u64,
        )?;
        gauge(
            &mut encoder,
            "vigil_wasm_calls_in_flight",
            "Check and loader instances running now",
            stats.calls_in_flight as u64,
        )?;
        gauge(
            &mut encoder,
            "vigil_wasm_call_slots",
            "Check and loader instances that may run at once",
            stats.call_slots as u64,
        )?;
        let created = ConstCounter::new(stats.stores_created);
        created.encode(encoder.encode_descriptor(
            "vigil_wasm_instances_created",
            "Fresh check and loader instances created; a call on a reused builtin instance adds none",
            None,
            created.metric_type(),
        )?)?;
        gauge(
            &mut encoder,
            "process_start_time_seconds",
            "Start time of the vigil process since the Unix epoch, seconds",
            self.process_start,
        )?;
        Ok(())
    }
}

/// The registry `/metrics` encodes.
pub fn registry(sup: &Supervisor, engine: &Engine, process_start: SystemTime) -> Registry {
    let mut registry = Registry::default();
    let checks = sup.check_metrics();
    registry.register(
        "vigil_check_duration_seconds",
        "How long checks took, from call to outcome",
        checks.durations().clone(),
    );
    registry.register(
        "vigil_check_outcomes",
        "Check results by outcome",
        checks.outcomes().clone(),
    );
    registry.register_collector(Box::new(Live {
        sup: sup.clone(),
        engine: engine.clone(),
        process_start: unix_secs(process_start),
    }));
    registry
}

/// The exposition text.
pub fn encode(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    Ok(text)
}

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of [`to_classic`]'s output.
pub const CLASSIC_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// OpenMetrics text (what the crate writes) as the classic Prometheus
/// text format 0.0.4, for scrapers and people that do not ask for
/// OpenMetrics: a counter family is declared under its sample name
/// (`foo_total`), and `# UNIT` and `# EOF` go. Everything else (gauges,
/// histograms, label escaping) is the same in both.
pub fn to_classic(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut block: Vec<&str> = Vec::new();
    let flush = |block: &mut Vec<&str>, out: &mut String| {
        let counter = block
            .iter()
            .find_map(|l| l.strip_prefix("# TYPE "))
            .and_then(|rest| rest.split_once(' '))
            .filter(|(_, kind)| *kind == "counter")
            .map(|(name, _)| name.to_string());
        for line in block.drain(..) {
            let renamed = counter.as_deref().and_then(|name| {
                ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
                    let rest = line.strip_prefix(prefix)?.strip_prefix(name)?;
                    rest.starts_with(' ')
                        .then(|| format!("{prefix}{name}_total{rest}"))
                })
            });
            match renamed {
                Some(line) => out.push_str(&line),
                None => out.push_str(line),
            }
            out.push('\n');
        }
    };
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if line.starts_with("# HELP ") {
            flush(&mut block, &mut out);
        }
        block.push(line);
    }
    flush(&mut block, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_declares_counters_by_sample_name() {
        let om = "# HELP a_seconds Time.\n# TYPE a_seconds histogram\n# UNIT a_seconds seconds\n\
                  a_seconds_sum 1.0\n# HELP b Count.\n# TYPE b counter\nb_total{x=\"1\"} 2\n\
                  # HELP bb Other.\n# TYPE bb gauge\nbb 3\n# EOF\n";
        let classic = to_classic(om);
        assert_eq!(
            classic,
            "# HELP a_seconds Time.\n# TYPE a_seconds histogram\na_seconds_sum 1.0\n\
             # HELP b_total Count.\n# TYPE b_total counter\nb_total{x=\"1\"} 2\n\
             # HELP bb Other.\n# TYPE bb gauge\nbb 3\n"
        );
    }
}
