//! Claims in the SQLite queue: whose turn comes next (priority, then jobs
//! in turn, then inputs in order; a turn takes a probe or up to the free
//! slots of one file's variations: README, "Scheduling"), claiming it, and
//! the writes about claimed work (a probe's findings, an unusable input,
//! the temporary file and FFmpeg's identity). One daemon owns the file, so
//! a claim is never lost ([`crate::queue::Sharing::OneDaemon`]).

use super::error::{Result, StoreError};
use super::rows::{effects_of, owner_of, path_of, place_of, sole_lease, text_of};
use super::settle::settle_job_of_file;
use super::store::Store;
use crate::history::{Count, Counter, RunFigures, RunOutcome};
use crate::job::{FileIdentity, FrameRate, JobId, JobState, Media, VideoStream};
use crate::process::ProcessIdentity;
use crate::queue::{VariationWork, Work};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;

/// The condition on `jobs j` of a job with work to start: open, not
/// paused, with an input to probe or a queued variation of a probed one.
const STARTABLE: &str = "j.state IN ('queued', 'running') AND NOT j.paused
    AND EXISTS (SELECT 1 FROM files f WHERE f.job_id = j.id
        AND (f.state = 'queued'
             OR (f.state = 'running' AND f.probed = 1
                 AND EXISTS (SELECT 1 FROM variations v
                             WHERE v.file_id = f.id AND v.state = 'queued'))))";

impl Store {
    /// The next turn: of the unpaused jobs that have work, those of the
    /// highest priority; among them, the first job after `after` (by id),
    /// wrapping around to the oldest: jobs of one priority take turns.
    /// The turn takes that job's first input still to be probed or with
    /// queued variations (see [`Store::next_work_of`]). `None` when
    /// nothing is startable. Does not claim it: call [`Store::start_probe`]
    /// or [`Store::start_variation`].
    pub fn next_work(&self, after: JobId, slots: usize) -> Result<Option<Work>> {
        // Two walks of the index jobs_open_by_priority that stop at the
        // first job with work: the first such job of the top priority,
        // then the next one after `after` of that priority, if any.
        let first = self
            .conn
            .prepare_cached(&format!(
                "SELECT j.id, j.priority FROM jobs j INDEXED BY jobs_open_by_priority
                 WHERE {STARTABLE} ORDER BY j.priority DESC, j.id LIMIT 1"
            ))?
            .query_row([], |r| Ok((r.get::<_, JobId>(0)?, r.get::<_, i32>(1)?)))
            .optional()?;
        let Some((first, top)) = first else {
            return Ok(None);
        };
        let next = self
            .conn
            .prepare_cached(&format!(
                "SELECT j.id FROM jobs j INDEXED BY jobs_open_by_priority
                 WHERE {STARTABLE} AND j.priority = ?1 AND j.id > ?2
                 ORDER BY j.priority DESC, j.id LIMIT 1"
            ))?
            .query_row(params![top, after], |r| r.get::<_, JobId>(0))
            .optional()?;
        self.next_work_of(next.unwrap_or(first), slots)
    }

    /// The turn of job `job`: its first input still to be probed or with a
    /// queued variation; for a probed one, up to `slots` of its queued
    /// variations by index (at least one).
    fn next_work_of(&self, job: JobId, slots: usize) -> Result<Option<Work>> {
        let limit = i64::try_from(slots.max(1)).unwrap_or(i64::MAX);
        let encode = self
            .conn
            .prepare_cached(
                "SELECT f.job_id, f.idx, f.id, v.id, v.idx, f.path, j.output_dir,
                        f.duration_us, v.rotation, v.brightness, v.contrast, v.saturation,
                        j.owner_uid, j.owner_gid, j.owner_groups,
                        f.real_path, f.dev, f.ino, j.output_real, j.output_dev, j.output_ino,
                        f.frame_rate, f.interlaced, j.variations, f.video_us,
                        f.video_stream, f.width, f.height
                 FROM variations v
                 JOIN files f ON f.id = v.file_id
                 JOIN jobs j ON j.id = f.job_id
                 WHERE v.state = 'queued'
                   AND v.file_id = (
                       SELECT g.id FROM files g
                       WHERE g.job_id = ?1 AND g.state = 'running' AND g.probed = 1
                         AND EXISTS (SELECT 1 FROM variations w
                                     WHERE w.file_id = g.id AND w.state = 'queued')
                       ORDER BY g.idx LIMIT 1)
                 ORDER BY v.idx LIMIT ?2",
            )?
            .query_map(params![job, limit], |r| {
                Ok((
                    (r.get::<_, i64>(0)?, r.get::<_, i64>(1)?),
                    VariationWork {
                        job_id: r.get(0)?,
                        file_id: r.get(2)?,
                        lease: sole_lease(r.get(3)?),
                        index: r.get(4)?,
                        input: path_of(r.get(5)?),
                        input_place: place_of(r, 5, 15)?,
                        output_dir: place_of(r, 6, 18)?,
                        media: Media {
                            duration_us: r.get::<_, Option<i64>>(7)?.map(|d| d as u64),
                            video_us: r.get::<_, Option<i64>>(24)?.map(|d| d as u64),
                            frame_rate: r
                                .get::<_, Option<String>>(21)?
                                .as_deref()
                                .and_then(FrameRate::parse),
                            interlaced: r.get(22)?,
                            stream: VideoStream::from_columns(r.get(25)?, r.get(26)?, r.get(27)?),
                        },
                        variations: r.get(23)?,
                        cancelled: false,
                        effects: effects_of(r, 8)?,
                        owner: owner_of(r, 12)?,
                        previous: None,
                    },
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let probe = self
            .conn
            .prepare_cached(
                "SELECT f.job_id, f.idx, f.id, f.path, j.owner_uid, j.owner_gid, j.owner_groups,
                        f.real_path, f.dev, f.ino
                 FROM files f JOIN jobs j ON j.id = f.job_id
                 WHERE f.state = 'queued' AND f.job_id = ?1
                 ORDER BY f.idx LIMIT 1",
            )?
            .query_row([job], |r| {
                Ok((
                    (r.get::<_, i64>(0)?, r.get::<_, i64>(1)?),
                    Work::Probe {
                        job_id: r.get(0)?,
                        lease: sole_lease(r.get(2)?),
                        path: path_of(r.get(3)?),
                        input: place_of(r, 3, 7)?,
                        owner: owner_of(r, 4)?,
                    },
                ))
            })
            .optional()?;
        let encode_key = encode.first().map(|(key, _)| *key);
        let batch = || Work::Encode(encode.into_iter().map(|(_, e)| e).collect());
        Ok(match (encode_key, probe) {
            (Some(ek), Some((pk, p))) => Some(if pk < ek { p } else { batch() }),
            (Some(_), None) => Some(batch()),
            (None, Some((_, p))) => Some(p),
            (None, None) => None,
        })
    }

    /// Claim the next turn after job `after` (see [`Store::next_work`]):
    /// a probe, or up to `slots` variations of one file, each with its
    /// temporary file's path (in the output directory, named by
    /// [`crate::naming::temp_name`]) recorded, all in one transaction.
    pub fn claim(&mut self, after: JobId, slots: usize) -> Result<Option<Work>> {
        let work = self.next_work(after, slots)?;
        match &work {
            Some(Work::Probe { lease, .. }) => self.start_probe(lease.id)?,
            Some(Work::Encode(batch)) => {
                let tx = self.conn.transaction()?;
                for e in batch {
                    let name = crate::naming::temp_name(&e.input, e.index, e.lease);
                    let temp = e.output_dir.path.join(name);
                    if !start_variation(&tx, e.lease.id, &temp)? {
                        return Err(StoreError::BadState(format!(
                            "variation {} was claimed twice",
                            e.lease.id
                        )));
                    }
                }
                let claims = Count::new(Counter::Claims, "", batch.len() as f64);
                super::history::add_counts(&tx, &[claims])?;
                tx.commit()?;
            }
            None => {}
        }
        Ok(work)
    }

    /// Claim a file for probing: the file and its job become running, and
    /// the claim is counted.
    pub fn start_probe(&mut self, file_id: i64) -> Result<()> {
        let tx = self.conn.transaction()?;
        super::history::add_counts(&tx, &[Count::new(Counter::Claims, "", 1.)])?;
        tx.execute(
            "UPDATE files SET state = 'running' WHERE id = ?1 AND state = 'queued'",
            [file_id],
        )?;
        tx.execute(
            "UPDATE jobs SET state = 'running'
             WHERE id = (SELECT job_id FROM files WHERE id = ?1) AND state = 'queued'",
            [file_id],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Record a successful probe; the file's variations become startable,
    /// each with an even share of the probe's `cpu_seconds` (taken by its
    /// next run's record, [`super::history::record_run`]).
    pub fn finish_probe(&mut self, file_id: i64, media: Media, cpu_seconds: f64) -> Result<()> {
        let tx = self.conn.transaction()?;
        let probed = tx.execute(
            "UPDATE files SET probed = 1, duration_us = ?2, frame_rate = ?3, interlaced = ?4,
                    video_us = ?5, video_stream = ?6, width = ?7, height = ?8
             WHERE id = ?1 AND state = 'running'",
            params![
                file_id,
                media.duration_us.map(|d| d as i64),
                media.frame_rate.map(|r| r.to_string()),
                media.interlaced,
                media.video_us.map(|d| d as i64),
                media.stream.map(|s| s.index),
                media.stream.and_then(|s| s.picture).map(|p| p.0),
                media.stream.and_then(|s| s.picture).map(|p| p.1)
            ],
        )?;
        if probed == 1 {
            tx.execute(
                "UPDATE variations SET probe_cpu_seconds = ?2
                     / (SELECT COUNT(*) FROM variations WHERE file_id = ?1)
                 WHERE file_id = ?1",
                params![file_id, cpu_seconds.max(0.)],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Fail a file before any of its variations ran (it cannot be read as a
    /// video). Its queued variations fail with it, each recorded in the
    /// history as a failed run with an even share of `run`; returns the
    /// job's state.
    pub fn fail_file(&mut self, file_id: i64, error: &str, run: &RunFigures) -> Result<JobState> {
        let tx = self.conn.transaction()?;
        let failed: Vec<i64> = tx
            .prepare(
                "UPDATE variations SET state = 'failed', error = ?2
                 WHERE file_id = ?1 AND state = 'queued' RETURNING id",
            )?
            .query_map(params![file_id, error], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let share = run.share(failed.len());
        for variation in failed {
            super::history::record_run(&tx, variation, RunOutcome::Failed, None, &share)?;
        }
        tx.execute(
            "UPDATE files SET state = 'failed', error = ?2 WHERE id = ?1 AND state = 'running'",
            params![file_id, error],
        )?;
        let state = settle_job_of_file(&tx, file_id)?;
        tx.commit()?;
        Ok(state)
    }

    /// Claim a queued variation: it becomes running with `temp_path` as the
    /// file its encode may create. Returns false if it was not queued any
    /// more (cancelled in between).
    pub fn start_variation(&mut self, variation_id: i64, temp_path: &Path) -> Result<bool> {
        start_variation(&self.conn, variation_id, temp_path)
    }

    /// Record which file the temporary file of a running variation is, once
    /// created, so that recovery can find it under its published name.
    pub fn set_temp(&mut self, variation_id: i64, temp: FileIdentity) -> Result<()> {
        self.conn.execute(
            "UPDATE variations SET temp_dev = ?2, temp_ino = ?3 WHERE id = ?1",
            params![variation_id, temp.dev as i64, temp.ino as i64],
        )?;
        Ok(())
    }

    /// Record the FFmpeg process of a running variation.
    pub fn set_process(&mut self, variation_id: i64, process: &ProcessIdentity) -> Result<()> {
        self.conn.execute(
            "UPDATE variations SET pid = ?2, pid_start_time = ?3, boot_id = ?4 WHERE id = ?1",
            params![
                variation_id,
                process.pid,
                process.start_time as i64,
                process.boot_id
            ],
        )?;
        Ok(())
    }
}

/// [`Store::start_variation`] on `conn` (the store's connection, or a
/// transaction of it).
fn start_variation(conn: &Connection, variation_id: i64, temp_path: &Path) -> Result<bool> {
    let changed = conn.execute(
        "UPDATE variations SET state = 'running', temp_path = ?2, error = NULL,
                temp_dev = NULL, temp_ino = NULL
         WHERE id = ?1 AND state = 'queued'",
        params![variation_id, text_of(temp_path)],
    )?;
    Ok(changed == 1)
}
