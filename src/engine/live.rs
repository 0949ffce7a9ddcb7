//! The live state of the work running now, in memory only: each running
//! variation's FFmpeg progress and stop, the probes in flight, the claims
//! in flight, and the views of progress and ETA that combine it with the
//! queue's stored rows (for `status`, `list`, `watch`, and the heartbeat's
//! progress). It stores nothing and asks the queue nothing.

use super::Stop;
use super::supervisor::Progress;
use crate::job;
use crate::proto::{FileState, FileStatus, JobId, RunningVariation};
use crate::queue::{FileRow, JobRow, Lease};
use std::collections::{BTreeSet, HashMap, HashSet};

/// A variation being encoded now.
pub(crate) struct Running {
    pub(crate) lease: Lease,
    pub(crate) job_id: JobId,
    pub(crate) file_id: i64,
    /// 1-based index of the variation of its input.
    pub(crate) index: u32,
    pub(crate) progress: Progress,
    pub(crate) stop: Stop,
    /// The number of the claim that gave it (see [`Live::claims`]).
    pub(crate) claim: u64,
}

/// What runs now on this daemon (node).
#[derive(Default)]
pub(crate) struct Live {
    pub(crate) running: HashMap<i64, Running>,
    /// The claims of the probes in flight; each holds a slot.
    pub(crate) probing: HashSet<Lease>,
    /// Claims sent to the queue and not yet registered here, by number.
    pub(crate) claims: BTreeSet<u64>,
    /// The number of the last claim sent, counting from 1.
    pub(crate) last_claim: u64,
    /// The job served last; the next turn goes to the job after it.
    pub(crate) last_job: JobId,
}

impl Live {
    /// The progress of the variations of file `file_id` running now.
    fn running_of(&self, file_id: i64) -> impl Iterator<Item = &Progress> {
        self.running
            .values()
            .filter(move |r| r.file_id == file_id)
            .map(|r| &r.progress)
    }

    /// Media time a file still has to encode on this node's reckoning
    /// ([`job::remaining_media_us`]), microseconds: 0 once final, `None` while
    /// its duration is unknown.
    fn remaining_us(&self, row: &FileRow, variations: u32) -> Option<u64> {
        if row.state.is_final() {
            return Some(0);
        }
        let running: Vec<u64> = self.running_of(row.id).map(|p| p.out_time_us).collect();
        row.duration_us.map(|d| {
            job::remaining_media_us(d, variations.into(), row.done_variations.into(), &running)
        })
    }

    /// The sum of the percents of file `file_id`'s running variations: what
    /// [`job::file_progress`] adds to the verified ones.
    pub(crate) fn running_sum(&self, file_id: i64) -> f64 {
        self.running_of(file_id).map(|p| p.percent).sum()
    }

    /// A file as `status` and `watch` show it: its stored figures, raised by
    /// what runs now here; its running variations this node's (`node` its
    /// name on a shared queue).
    pub(crate) fn file_status(
        &self,
        row: &FileRow,
        variations: u32,
        node: Option<&str>,
    ) -> FileStatus {
        let progress = match row.state {
            FileState::Succeeded => 100.0,
            FileState::Running => job::file_progress(
                variations.into(),
                row.done_variations.into(),
                self.running_sum(row.id),
            )
            .max(row.progress),
            _ => row.progress,
        };
        // Without a duration there is no percent to show: the media time is.
        let encoded_secs = (row.state == FileState::Running && row.duration_us.is_none())
            .then(|| self.running_of(row.id).map(|p| p.out_time_us).max())
            .flatten()
            .map(|us| us as f64 / 1e6);
        let mut running: Vec<RunningVariation> = self
            .running
            .values()
            .filter(|r| r.file_id == row.id)
            .map(|r| RunningVariation {
                index: r.index,
                percent: Some(r.progress.percent),
                encoded_secs: Some(r.progress.out_time_us as f64 / 1e6),
                speed: job::usable_speed(r.progress.out_time_us, r.progress.speed),
                fps: r.progress.fps,
                node: node.map(String::from),
            })
            .collect();
        running.sort_by_key(|r| r.index);
        let speed = running.iter().filter_map(|r| r.speed).sum();
        let eta_secs = match self.remaining_us(row, variations) {
            Some(0) if row.state.is_final() => Some(0.0),
            Some(left) => job::eta_secs(left, speed),
            None => None,
        };
        FileStatus {
            running,
            eta_secs,
            encoded_secs,
            path: row.path.clone(),
            state: row.state,
            progress,
            done_variations: row.done_variations,
            duration_secs: row.duration_us.map(|us| us as f64 / 1e6),
            error: row.error.clone(),
            nodes: row.nodes.clone(),
        }
    }

    /// Seconds until job `row` (of these `files`) ends on this node's
    /// reckoning ([`job::eta_secs`]): 0 once final, `None` while a file's
    /// duration is unknown or nothing runs.
    pub(crate) fn job_eta_secs(&self, row: &JobRow, files: &[FileRow]) -> Option<f64> {
        if row.state.is_final() {
            return Some(0.0);
        }
        let left: Option<u64> = files
            .iter()
            .map(|f| self.remaining_us(f, row.variations))
            .sum();
        let speed = self
            .running
            .values()
            .filter(|r| r.job_id == row.id)
            .filter_map(|r| job::usable_speed(r.progress.out_time_us, r.progress.speed))
            .sum();
        left.and_then(|left| job::eta_secs(left, speed))
    }
}
