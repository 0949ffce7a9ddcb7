//! The history of what ran (issue 26): one record per variation run when
//! it ends ([`RunFigures`] in, [`RunRow`] out), and counters that never go
//! down ([`Count`]), both kept by the queue apart from the job rows, so
//! that `prune` and `retention_days` lower neither. This module owns the
//! rules both backends apply alike: which counters a run's end adds to
//! ([`counts_of_run`]), the histograms' bucket bounds, and how long a run
//! record is kept ([`HISTORY_DAYS`]). It must not touch a database or a
//! process.

use serde::{Deserialize, Serialize};

/// Days a run record is kept after its end; older ones are deleted as new
/// ones are written. Counters are kept for ever.
pub const HISTORY_DAYS: i64 = 90;

/// How a variation run ended, as the history spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Succeeded,
    Failed,
    Cancelled,
    /// Stopped by `pause --stop` and queued again.
    Requeued,
}

impl RunOutcome {
    /// Every outcome, in the order of [`RunOutcome::as_str`]'s sort.
    pub const ALL: [RunOutcome; 4] = [
        RunOutcome::Cancelled,
        RunOutcome::Failed,
        RunOutcome::Requeued,
        RunOutcome::Succeeded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Succeeded => "succeeded",
            RunOutcome::Failed => "failed",
            RunOutcome::Cancelled => "cancelled",
            RunOutcome::Requeued => "requeued",
        }
    }

    /// The outcome `text` names; `None` for any other text.
    pub fn parse(text: &str) -> Option<RunOutcome> {
        RunOutcome::ALL.into_iter().find(|o| o.as_str() == text)
    }
}

/// What a variation run cost, measured by the worker and written with its
/// outcome ([`crate::queue::Queue::finish_variation`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFigures {
    /// Unix seconds when the run was claimed.
    pub started_at: i64,
    /// Unix seconds when it ended.
    pub ended_at: i64,
    /// Seconds from claim to end, by the monotonic clock.
    pub wall_seconds: f64,
    /// CPU seconds (user + system) of its processes (its encode, the
    /// check of its output), from each process's rusage at its exit
    /// (waitid(2)); a pipeline's decoder and stage, shared by its batch,
    /// count evenly for each of its variations.
    pub cpu_seconds: f64,
    /// Media seconds encoded: FFmpeg's last `out_time_us` over 10^6; 0 when
    /// it reported none.
    pub media_seconds: f64,
    /// For a failed run, the class of its failure (e.g. `ffmpeg`,
    /// `stalled`, `input`; see the worker's `Failure::class`).
    pub reason: Option<String>,
}

impl RunFigures {
    /// One of `n` even shares of a run that `n` variations took part in
    /// (a failed probe's, say): its CPU, wall and media seconds divided by
    /// `n` (at least 1), its times and reason kept.
    pub fn share(&self, n: usize) -> RunFigures {
        let n = n.max(1) as f64;
        RunFigures {
            wall_seconds: self.wall_seconds / n,
            cpu_seconds: self.cpu_seconds / n,
            media_seconds: self.media_seconds / n,
            ..self.clone()
        }
    }
}

/// One run of the history, as [`crate::queue::Queue::runs`] returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    pub job_id: i64,
    /// The variation's index, 1-based.
    pub index: u32,
    pub owner_uid: u32,
    /// The job's labels when the run ended, sorted.
    pub labels: Vec<String>,
    /// The node that ran it; `None` on a queue of one machine.
    pub node: Option<String>,
    pub outcome: RunOutcome,
    /// Failure class, for a failed run.
    pub reason: Option<String>,
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds.
    pub ended_at: i64,
    pub wall_seconds: f64,
    /// [`RunFigures::cpu_seconds`] plus the run's share of its input's
    /// probe (see [`crate::queue::Queue::finish_probe`]): the whole CPU
    /// cost of the variation.
    pub cpu_seconds: f64,
    pub media_seconds: f64,
    /// The quality check's lowest SSIM, for a checked output.
    pub ssim_min: Option<f64>,
}

/// Which runs [`crate::queue::Queue::runs`] returns: those that ended at
/// or after `since`, matching every field that is set, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    /// Unix seconds.
    pub since: i64,
    /// Only this owner's runs; `None` for everyone's.
    pub owner: Option<u32>,
    /// Only runs of jobs carrying this label.
    pub label: Option<String>,
}

/// The counters a queue keeps, by name in its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Counter {
    /// Variation runs ended, by outcome (key: [`RunOutcome::as_str`]).
    Variations,
    /// Completion hook runs, by result (key: [`HookResult::as_str`]).
    HookRuns,
    /// Claims of work (one per probe or variation claimed).
    Claims,
    /// Claims that took over work whose earlier claim was lost.
    Takeovers,
    /// Queue calls that failed with a database error.
    DatabaseErrors,
    /// CPU seconds of ended runs.
    CpuSeconds,
    /// Media seconds encoded by ended runs.
    MediaSeconds,
    /// Histogram of ended runs' wall seconds: key the bucket's upper bound
    /// (not cumulative); [`Counter::WallSecondsSum`] their sum.
    WallSeconds,
    WallSecondsSum,
    /// Histogram of succeeded runs' encoded media seconds.
    EncodedSeconds,
    EncodedSecondsSum,
    /// Histogram of checked outputs' lowest SSIM.
    SsimMin,
    SsimMinSum,
}

impl Counter {
    /// Every counter, in the order of their names.
    pub const ALL: [Counter; 13] = [
        Counter::Claims,
        Counter::CpuSeconds,
        Counter::DatabaseErrors,
        Counter::EncodedSeconds,
        Counter::EncodedSecondsSum,
        Counter::HookRuns,
        Counter::MediaSeconds,
        Counter::SsimMin,
        Counter::SsimMinSum,
        Counter::Takeovers,
        Counter::Variations,
        Counter::WallSeconds,
        Counter::WallSecondsSum,
    ];

    /// Its name in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Counter::Variations => "variations",
            Counter::HookRuns => "hook_runs",
            Counter::Claims => "claims",
            Counter::Takeovers => "takeovers",
            Counter::DatabaseErrors => "database_errors",
            Counter::CpuSeconds => "cpu_seconds",
            Counter::MediaSeconds => "media_seconds",
            Counter::WallSeconds => "wall_seconds",
            Counter::WallSecondsSum => "wall_seconds_sum",
            Counter::EncodedSeconds => "encoded_seconds",
            Counter::EncodedSecondsSum => "encoded_seconds_sum",
            Counter::SsimMin => "ssim_min",
            Counter::SsimMinSum => "ssim_min_sum",
        }
    }

    /// The counter named `text` in the store; `None` for another name
    /// (one of a newer version).
    pub fn parse(text: &str) -> Option<Counter> {
        Counter::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// An amount to add to one counter.
#[derive(Debug, Clone, PartialEq)]
pub struct Count {
    pub counter: Counter,
    /// Which of the counter's series (an outcome, a bucket bound); empty
    /// for a counter of one series.
    pub key: String,
    /// Never negative.
    pub by: f64,
}

impl Count {
    pub fn new(counter: Counter, key: &str, by: f64) -> Count {
        Count {
            counter,
            key: key.into(),
            by,
        }
    }
}

/// A counter's value as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterRow {
    /// The node that counted it; `None` on a queue of one machine.
    pub node: Option<String>,
    pub counter: Counter,
    pub key: String,
    pub value: f64,
}

/// How a completion hook run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookResult {
    /// Exited with status 0.
    Succeeded,
    /// Exited with another status or was killed by a signal.
    Failed,
    /// Killed at its timeout.
    TimedOut,
    /// Could not be started.
    NotStarted,
    /// Started by an earlier run of the daemon, ended while it was
    /// stopped or waited for after its restart: its exit status is lost.
    Unknown,
}

impl HookResult {
    pub fn as_str(self) -> &'static str {
        match self {
            HookResult::Succeeded => "succeeded",
            HookResult::Failed => "failed",
            HookResult::TimedOut => "timed_out",
            HookResult::NotStarted => "not_started",
            HookResult::Unknown => "unknown",
        }
    }
}

/// Upper bounds of the wall-seconds and encoded-seconds histograms, in
/// seconds (then `+Inf`).
pub const SECONDS_BUCKETS: [f64; 10] = [1., 5., 15., 30., 60., 120., 300., 600., 1800., 3600.];

/// Upper bounds of the lowest-SSIM histogram (then `+Inf`).
pub const SSIM_BUCKETS: [f64; 9] = [0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 1.0];

/// The key of the bucket of `bounds` that `value` falls in: the smallest
/// bound at least `value`, as Prometheus writes it, else `+Inf`.
pub fn bucket_key(bounds: &[f64], value: f64) -> String {
    bounds
        .iter()
        .find(|&&bound| value <= bound)
        .map_or_else(|| "+Inf".into(), |bound| bound.to_string())
}

/// What the end of a run adds to the counters: one to its outcome, its CPU
/// and media seconds, its wall seconds' bucket and sum; for a succeeded
/// run its encoded seconds' bucket and sum, and for a checked output its
/// lowest SSIM's. Sorted by counter and key, so that every writer takes
/// the counters' row locks in one order.
pub fn counts_of_run(outcome: RunOutcome, run: &RunFigures, ssim_min: Option<f64>) -> Vec<Count> {
    let mut counts = vec![
        Count::new(Counter::Variations, outcome.as_str(), 1.),
        Count::new(Counter::CpuSeconds, "", run.cpu_seconds.max(0.)),
        Count::new(Counter::MediaSeconds, "", run.media_seconds.max(0.)),
        Count::new(
            Counter::WallSeconds,
            &bucket_key(&SECONDS_BUCKETS, run.wall_seconds),
            1.,
        ),
        Count::new(Counter::WallSecondsSum, "", run.wall_seconds.max(0.)),
    ];
    if outcome == RunOutcome::Succeeded {
        counts.push(Count::new(
            Counter::EncodedSeconds,
            &bucket_key(&SECONDS_BUCKETS, run.media_seconds),
            1.,
        ));
        counts.push(Count::new(
            Counter::EncodedSecondsSum,
            "",
            run.media_seconds.max(0.),
        ));
    }
    if let Some(ssim) = ssim_min {
        counts.push(Count::new(
            Counter::SsimMin,
            &bucket_key(&SSIM_BUCKETS, ssim),
            1.,
        ));
        counts.push(Count::new(Counter::SsimMinSum, "", ssim.max(0.)));
    }
    sorted(counts)
}

/// `counts` sorted by counter name and key, the order in which writers
/// lock counter rows, with the counts of one series added up (a series
/// appears once, as one upsert may change a row only once).
pub fn sorted(mut counts: Vec<Count>) -> Vec<Count> {
    counts.sort_by(|a, b| (a.counter.as_str(), &a.key).cmp(&(b.counter.as_str(), &b.key)));
    let mut merged: Vec<Count> = Vec::with_capacity(counts.len());
    for count in counts {
        match merged.last_mut() {
            Some(last) if last.counter == count.counter && last.key == count.key => {
                last.by += count.by
            }
            _ => merged.push(count),
        }
    }
    merged
}

/// Database errors a queue counted and has not written to its counters
/// yet (an error is counted where it is met, when the database may well
/// be away; the count is written with the next write that succeeds).
#[derive(Debug, Default)]
pub struct ErrorTally(std::sync::atomic::AtomicU64);

impl ErrorTally {
    /// Count one error.
    pub fn note(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Take the errors counted so far, to be written with `counts`:
    /// `counts` with a [`Counter::DatabaseErrors`] count added when there
    /// were any, sorted, and how many were taken (give them back with
    /// [`ErrorTally::give_back`] if the write fails).
    pub fn take_into(&self, mut counts: Vec<Count>) -> (Vec<Count>, u64) {
        let taken = self.0.swap(0, std::sync::atomic::Ordering::Relaxed);
        if taken > 0 {
            counts.push(Count::new(Counter::DatabaseErrors, "", taken as f64));
        }
        (sorted(counts), taken)
    }

    /// Errors taken for a write that failed.
    pub fn give_back(&self, taken: u64) {
        self.0
            .fetch_add(taken, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_falls_in_the_smallest_bucket_that_holds_it() {
        assert_eq!(bucket_key(&SECONDS_BUCKETS, 0.2), "1");
        assert_eq!(bucket_key(&SECONDS_BUCKETS, 5.0), "5");
        assert_eq!(bucket_key(&SECONDS_BUCKETS, 5.01), "15");
        assert_eq!(bucket_key(&SECONDS_BUCKETS, 1e6), "+Inf");
        assert_eq!(bucket_key(&SSIM_BUCKETS, 0.97), "0.98");
    }

    #[test]
    fn a_runs_counts_are_sorted_and_name_each_counter_once() {
        let run = RunFigures {
            wall_seconds: 12.,
            cpu_seconds: 3.,
            media_seconds: 2.,
            ..RunFigures::default()
        };
        let counts = counts_of_run(RunOutcome::Succeeded, &run, Some(0.93));
        let names: Vec<&str> = counts.iter().map(|c| c.counter.as_str()).collect();
        let mut expected = names.clone();
        expected.sort();
        expected.dedup();
        assert_eq!(names, expected);
        assert!(counts.contains(&Count::new(Counter::WallSeconds, "15", 1.)));
        assert!(counts.contains(&Count::new(Counter::SsimMin, "0.95", 1.)));
        let failed = counts_of_run(RunOutcome::Failed, &run, None);
        assert!(failed.iter().all(|c| c.counter != Counter::EncodedSeconds));
        assert!(failed.contains(&Count::new(Counter::Variations, "failed", 1.)));
    }

    #[test]
    fn database_errors_are_written_once_or_given_back() {
        let tally = ErrorTally::default();
        tally.note();
        tally.note();
        let (counts, taken) = tally.take_into(vec![Count::new(Counter::Claims, "", 1.)]);
        assert_eq!(taken, 2);
        assert!(counts.contains(&Count::new(Counter::DatabaseErrors, "", 2.)));
        assert_eq!(tally.take_into(Vec::new()), (Vec::new(), 0), "taken once");
        tally.give_back(taken);
        let (counts, _) = tally.take_into(Vec::new());
        assert_eq!(counts, vec![Count::new(Counter::DatabaseErrors, "", 2.)]);
    }

    #[test]
    fn sorting_adds_up_the_counts_of_one_series() {
        let counts = sorted(vec![
            Count::new(Counter::Takeovers, "", 1.),
            Count::new(Counter::Claims, "", 2.),
            Count::new(Counter::Claims, "", 3.),
        ]);
        assert_eq!(
            counts,
            vec![
                Count::new(Counter::Claims, "", 5.),
                Count::new(Counter::Takeovers, "", 1.)
            ]
        );
    }

    #[test]
    fn names_round_trip() {
        for c in Counter::ALL {
            assert_eq!(Counter::parse(c.as_str()), Some(c));
        }
        for o in RunOutcome::ALL {
            assert_eq!(RunOutcome::parse(o.as_str()), Some(o));
        }
        let mut names: Vec<&str> = Counter::ALL.iter().map(|c| c.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            Counter::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>()
        );
    }
}
