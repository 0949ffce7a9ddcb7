//! The metrics in Prometheus's text exposition format 0.0.4: a
//! [`Snapshot`] of the daemon (its counters from the queue, the queue's
//! depth, what runs now, the nodes) rendered by [`render`] with a `# HELP`
//! and a `# TYPE` line for every family, names and units by Prometheus's
//! conventions (`vidvar_..._total` counters, `_seconds`). No family names
//! a path, a label of a job or a user: any socket user may read them.
//! Gathering the snapshot is the engine's; serving it is the daemon's.

use crate::history::{self, Counter, CounterRow, RunOutcome};
use crate::queue::{Census, NodeRow};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The media type of [`render`]'s text, as scrapers expect it.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Everything the metrics show, at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// The package version, for `vidvar_build_info`.
    pub version: String,
    /// Every counter of the queue (each node's, on a shared queue).
    pub counters: Vec<CounterRow>,
    pub census: Census,
    /// This daemon's slots (`max_parallel`).
    pub slots: u32,
    /// This daemon's slots held now (encodes, probes and claims).
    pub busy: u32,
    /// Variations this daemon encodes now.
    pub running: u32,
    /// Whether this daemon (node) is paused.
    pub paused: bool,
    /// Frames per second of each encode running on this daemon, as FFmpeg
    /// reports them.
    pub fps: Vec<f64>,
    /// The nodes of a shared queue; empty on one machine.
    pub nodes: Vec<NodeRow>,
}

/// One family's header.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value escaped as the format asks (backslash, quote, newline).
fn escaped(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `{a="x",b="y"}` of the pairs, or nothing when there are none.
fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escaped(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// A sample line; values as Prometheus writes them (`+Inf`, integers
/// without a fraction).
fn sample(out: &mut String, name: &str, pairs: &[(&str, &str)], value: f64) {
    let _ = writeln!(out, "{name}{} {}", labels(pairs), number(value));
}

fn number(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0. { "+Inf" } else { "-Inf" }.into();
    }
    if value.is_nan() {
        return "NaN".into();
    }
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return format!("{}", value as i64);
    }
    format!("{value}")
}

/// The counters by node (`None`: one machine) and counter, each a map of
/// key to value.
type ByNode<'a> = BTreeMap<Option<&'a str>, BTreeMap<Counter, BTreeMap<&'a str, f64>>>;

fn by_node(rows: &[CounterRow]) -> ByNode<'_> {
    let mut nodes: ByNode<'_> = BTreeMap::new();
    for row in rows {
        *nodes
            .entry(row.node.as_deref())
            .or_default()
            .entry(row.counter)
            .or_default()
            .entry(row.key.as_str())
            .or_default() += row.value;
    }
    // One machine, nothing counted yet: its families still show zeros.
    if nodes.is_empty() {
        nodes.insert(None, BTreeMap::new());
    }
    nodes
}

/// `node="NAME"` for a node of a shared queue, nothing on one machine.
fn node_label(node: Option<&str>) -> Vec<(&str, &str)> {
    node.map(|n| vec![("node", n)]).unwrap_or_default()
}

/// A counter family of one series per node: the counter's `""` key.
fn plain_counter(out: &mut String, nodes: &ByNode<'_>, name: &str, counter: Counter, help: &str) {
    family(out, name, "counter", help);
    for (node, counters) in nodes {
        let value = counters
            .get(&counter)
            .and_then(|keys| keys.get(""))
            .copied()
            .unwrap_or(0.);
        sample(out, name, &node_label(*node), value);
    }
}

/// A counter family of one series per node and key, `label` naming the
/// key; every key of `always` is shown, counted or not.
fn keyed_counter(
    out: &mut String,
    nodes: &ByNode<'_>,
    (name, label): (&str, &str),
    counter: Counter,
    always: &[&str],
    help: &str,
) {
    family(out, name, "counter", help);
    for (node, counters) in nodes {
        let mut keys: BTreeMap<&str, f64> = always.iter().map(|k| (*k, 0.)).collect();
        if let Some(counted) = counters.get(&counter) {
            keys.extend(counted.iter().map(|(k, v)| (*k, *v)));
        }
        for (key, value) in keys {
            let mut pairs = node_label(*node);
            pairs.push((label, key));
            sample(out, name, &pairs, value);
        }
    }
}

/// A histogram family per node from a bucket counter (non-cumulative
/// counts keyed by [`history::bucket_key`]) and its sum counter.
fn histogram(
    out: &mut String,
    nodes: &ByNode<'_>,
    name: &str,
    (buckets, sum): (Counter, Counter),
    bounds: &[f64],
    help: &str,
) {
    family(out, name, "histogram", help);
    for (node, counters) in nodes {
        let counted = counters.get(&buckets);
        let count_of = |key: &str| counted.and_then(|c| c.get(key)).copied().unwrap_or(0.);
        let mut total = 0.;
        for bound in bounds {
            total += count_of(&bound.to_string());
            let le = number(*bound);
            let mut pairs = node_label(*node);
            pairs.push(("le", &le));
            sample(out, &format!("{name}_bucket"), &pairs, total);
        }
        total += count_of("+Inf");
        let mut pairs = node_label(*node);
        pairs.push(("le", "+Inf"));
        sample(out, &format!("{name}_bucket"), &pairs, total);
        let summed = counters
            .get(&sum)
            .and_then(|keys| keys.get(""))
            .copied()
            .unwrap_or(0.);
        sample(out, &format!("{name}_sum"), &node_label(*node), summed);
        sample(out, &format!("{name}_count"), &node_label(*node), total);
    }
}

/// A gauge family of one sample.
fn gauge(out: &mut String, name: &str, help: &str, value: f64) {
    family(out, name, "gauge", help);
    sample(out, name, &[], value);
}

/// The snapshot in the text exposition format 0.0.4.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(8 * 1024);
    family(
        &mut out,
        "vidvar_build_info",
        "gauge",
        "The running vidvard's version (always 1).",
    );
    sample(
        &mut out,
        "vidvar_build_info",
        &[("version", &s.version)],
        1.,
    );

    let nodes = by_node(&s.counters);
    let outcomes: Vec<&str> = RunOutcome::ALL.iter().map(|o| o.as_str()).collect();
    keyed_counter(
        &mut out,
        &nodes,
        ("vidvar_variations_total", "outcome"),
        Counter::Variations,
        &outcomes,
        "Variation runs ended, by outcome (requeued: stopped by pause --stop).",
    );
    keyed_counter(
        &mut out,
        &nodes,
        ("vidvar_hook_runs_total", "result"),
        Counter::HookRuns,
        &["failed", "not_started", "succeeded", "timed_out", "unknown"],
        "Completion hook runs, by result.",
    );
    let plain = [
        (
            "vidvar_claims_total",
            Counter::Claims,
            "Claims of work: one per probe or variation claimed.",
        ),
        (
            "vidvar_lease_takeovers_total",
            Counter::Takeovers,
            "Claims that took over work whose earlier claim was lost.",
        ),
        (
            "vidvar_database_errors_total",
            Counter::DatabaseErrors,
            "Queue calls that failed with a database error.",
        ),
        (
            "vidvar_variation_cpu_seconds_total",
            Counter::CpuSeconds,
            "CPU seconds (user + system) of ended variation runs' processes: encode, check and a share of the input's probe.",
        ),
        (
            "vidvar_variation_media_seconds_total",
            Counter::MediaSeconds,
            "Media seconds encoded by ended variation runs.",
        ),
    ];
    for (name, counter, help) in plain {
        plain_counter(&mut out, &nodes, name, counter, help);
    }
    histogram(
        &mut out,
        &nodes,
        "vidvar_variation_wall_seconds",
        (Counter::WallSeconds, Counter::WallSecondsSum),
        &history::SECONDS_BUCKETS,
        "Wall-clock seconds of ended variation runs, from claim to end.",
    );
    histogram(
        &mut out,
        &nodes,
        "vidvar_variation_encoded_seconds",
        (Counter::EncodedSeconds, Counter::EncodedSecondsSum),
        &history::SECONDS_BUCKETS,
        "Media seconds encoded per succeeded variation.",
    );
    histogram(
        &mut out,
        &nodes,
        "vidvar_output_ssim_min",
        (Counter::SsimMin, Counter::SsimMinSum),
        &history::SSIM_BUCKETS,
        "Lowest SSIM of the quality check's samples, per checked output.",
    );

    family(
        &mut out,
        "vidvar_jobs",
        "gauge",
        "Jobs stored, by state (the queue's depth: queued and running).",
    );
    let mut states: BTreeMap<&str, u64> = crate::job::JobState::ALL
        .iter()
        .map(|state| (state.as_str(), 0))
        .collect();
    for (state, n) in &s.census.jobs {
        states.insert(state.as_str(), *n);
    }
    for (state, n) in states {
        sample(&mut out, "vidvar_jobs", &[("state", state)], n as f64);
    }
    gauge(
        &mut out,
        "vidvar_variations_queued",
        "Variations waiting to be claimed, of every job.",
        s.census.variations_queued as f64,
    );
    gauge(
        &mut out,
        "vidvar_variations_running",
        "Variations claimed and running, on every node.",
        s.census.variations_running as f64,
    );
    gauge(
        &mut out,
        "vidvar_running_encodes",
        "Variations this daemon encodes now.",
        s.running as f64,
    );
    gauge(
        &mut out,
        "vidvar_slots",
        "This daemon's slots of work (max_parallel).",
        s.slots as f64,
    );
    gauge(
        &mut out,
        "vidvar_slots_busy",
        "This daemon's slots held now by encodes, probes and claims.",
        s.busy as f64,
    );
    gauge(
        &mut out,
        "vidvar_paused",
        "1 while this daemon (node) is paused: it claims nothing.",
        if s.paused { 1. } else { 0. },
    );
    gauge(
        &mut out,
        "vidvar_encode_frames_per_second",
        "Frames per second of this daemon's running encodes, added up.",
        s.fps.iter().sum(),
    );
    if !s.nodes.is_empty() {
        family(
            &mut out,
            "vidvar_node_up",
            "gauge",
            "1 while a node of the shared queue beats within its lease time.",
        );
        for n in &s.nodes {
            let up = if n.up { 1. } else { 0. };
            sample(&mut out, "vidvar_node_up", &[("node", &n.name)], up);
        }
        family(
            &mut out,
            "vidvar_node_last_heartbeat_timestamp_seconds",
            "gauge",
            "Unix time of a node's last heartbeat.",
        );
        for n in &s.nodes {
            let at = n.last_heartbeat as f64;
            let name = "vidvar_node_last_heartbeat_timestamp_seconds";
            sample(&mut out, name, &[("node", &n.name)], at);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(node: Option<&str>, counter: Counter, key: &str, value: f64) -> CounterRow {
        CounterRow {
            node: node.map(String::from),
            counter,
            key: key.into(),
            value,
        }
    }

    #[test]
    fn histograms_are_cumulative_and_count_every_bucket() {
        let snapshot = Snapshot {
            counters: vec![
                row(None, Counter::WallSeconds, "5", 2.),
                row(None, Counter::WallSeconds, "60", 1.),
                row(None, Counter::WallSeconds, "+Inf", 1.),
                row(None, Counter::WallSecondsSum, "", 4000.5),
            ],
            ..Snapshot::default()
        };
        let text = render(&snapshot);
        for line in [
            "vidvar_variation_wall_seconds_bucket{le=\"1\"} 0",
            "vidvar_variation_wall_seconds_bucket{le=\"5\"} 2",
            "vidvar_variation_wall_seconds_bucket{le=\"30\"} 2",
            "vidvar_variation_wall_seconds_bucket{le=\"60\"} 3",
            "vidvar_variation_wall_seconds_bucket{le=\"+Inf\"} 4",
            "vidvar_variation_wall_seconds_sum 4000.5",
            "vidvar_variation_wall_seconds_count 4",
            "vidvar_variations_total{outcome=\"failed\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn a_shared_queues_counters_carry_their_node() {
        let snapshot = Snapshot {
            counters: vec![
                row(Some("a"), Counter::Claims, "", 3.),
                row(Some("b\"x"), Counter::Claims, "", 1.),
            ],
            ..Snapshot::default()
        };
        let text = render(&snapshot);
        assert!(
            text.contains("vidvar_claims_total{node=\"a\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("vidvar_claims_total{node=\"b\\\"x\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn every_family_has_help_and_type_before_its_samples() {
        let text = render(&Snapshot::default());
        let mut declared = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|b| declared.contains(*b)))
                    .unwrap_or(name);
                assert!(declared.contains(base), "{name} has no TYPE");
            }
        }
        assert_eq!(
            text.matches("# HELP ").count(),
            text.matches("# TYPE ").count()
        );
    }
}
