//! Claims in the shared queue: whose turn comes next (priority, then jobs
//! in turn, then inputs in order; a turn takes a probe or up to the free
//! slots of one file's variations: README, "Scheduling"), claimed with
//! `FOR UPDATE SKIP LOCKED` in one short transaction, each probe and each
//! variation as a lease of its own; the writes about claimed work, each
//! fenced by node and attempt; and the heartbeat that renews this node's
//! leases and names those it lost.

use super::listen;
use super::rows::{
    column_u32, credentials, effects, exec, identity, one, opt, place, process, rows,
};
use super::settle::{job_of_file, lock_job, raise_running_progress, settle_job};
use super::store::PgQueue;
use crate::history::{Count, Counter, RunFigures, RunOutcome};
use crate::job::{FileIdentity, FrameRate, JobId, JobState, Lease, Media, VideoStream};
use crate::naming::temp_name;
use crate::process::ProcessIdentity;
use crate::queue::{Beat, Interrupted, Result, VariationWork, Work};
use deadpool_postgres::Transaction;
use std::path::PathBuf;
use tokio_postgres::Row;

/// Where claimable work stands in the claim order: higher priority first,
/// then the jobs after the one served last, then by job and input.
type Turn = (std::cmp::Reverse<i32>, bool, i64, i32);

/// The [`Turn`] of a work row whose job id and input index are columns 2
/// and 3, and its job's priority column `priority`.
fn turn(r: &Row, after: JobId, priority: usize) -> Turn {
    let job: i64 = r.get(2);
    (
        std::cmp::Reverse(r.get(priority)),
        job <= after,
        job,
        r.get(3),
    )
}

/// The rows a claimable variation is read from: it, its file and its job.
const VARIATIONS: &str =
    "variations v JOIN files f ON f.id = v.file_id JOIN jobs j ON j.id = f.job_id";

/// The condition on [`VARIATIONS`] of a variation this node ($2, its lease
/// time $3 in seconds) may claim: queued in a probed file of an unpaused
/// job, or running under another node's claim that expired while that
/// node is silent, in an unpaused job or a cancelled one (whose claim is
/// taken over only to settle what it left: see
/// [`VariationWork::cancelled`](crate::queue::VariationWork::cancelled)).
const CLAIMABLE: &str = "f.probed
    AND ((v.state = 'queued' AND f.state = 'running' AND NOT j.paused)
         OR (v.state = 'running' AND v.lease_until < now()
             AND v.node IS DISTINCT FROM $2 AND owner_silent(v.node, $3)
             AND (NOT j.paused OR j.state = 'cancelled')))";

impl PgQueue {
    /// The next probe (a queued file, or one whose probe claim by another
    /// node expired), locked with its job (the claim updates the job: locks
    /// are taken job and file together, as a cancel takes them), with its
    /// turn key. This node's own expired
    /// claims are not taken: its heartbeat renews them when it can.
    async fn next_probe(&self, tx: &Transaction<'_>, after: JobId) -> Result<Option<(Turn, Row)>> {
        let row = opt(
            tx,
            "SELECT f.id, f.attempt, f.job_id, f.idx, f.path, f.real_path, f.dev, f.ino,
                        j.owner_uid, j.owner_gid, j.owner_groups, j.priority,
                        f.state = 'running'
                 FROM files f JOIN jobs j ON j.id = f.job_id
                 WHERE j.state IN ('queued', 'running') AND NOT j.paused
                   AND (f.state = 'queued'
                        OR (f.state = 'running' AND NOT f.probed AND f.lease_until < now()
                            AND f.node IS DISTINCT FROM $2 AND owner_silent(f.node, $3)))
                 ORDER BY j.priority DESC, (f.job_id <= $1), f.job_id, f.idx
                 LIMIT 1 FOR UPDATE OF f, j SKIP LOCKED",
            &[&after, &self.node, &self.lease_secs],
        )
        .await?;
        Ok(row.map(|r| (turn(&r, after, 11), r)))
    }

    /// The next turn's variations: of the first file in turn with a
    /// claimable variation (queued in a probed file, or one whose claim by
    /// another node expired), up to `slots` of them by index, locked, with
    /// the file's turn key. Never empty when `Some`.
    async fn next_variations(
        &self,
        tx: &Transaction<'_>,
        after: JobId,
        slots: usize,
    ) -> Result<Option<(Turn, Vec<Row>)>> {
        // One statement, so one snapshot: the file is chosen (its first
        // claimable variation locked) and its batch read alike, however
        // a pause or cancel elsewhere lands.
        let limit = i64::try_from(slots.max(1)).unwrap_or(i64::MAX);
        let found = rows(
            tx,
            &format!(
                "WITH first AS MATERIALIZED (
                     SELECT f.id FROM {VARIATIONS} WHERE {CLAIMABLE}
                     ORDER BY j.priority DESC, (f.job_id <= $1), f.job_id, f.idx, v.idx
                     LIMIT 1 FOR UPDATE OF v SKIP LOCKED)
                 SELECT v.id, v.attempt, f.job_id, f.idx, f.id, v.idx, f.path, f.real_path,
                        f.dev, f.ino, j.output_real, j.output_dev, j.output_ino, f.duration_us,
                        v.rotation, v.brightness, v.contrast, v.saturation,
                        j.owner_uid, j.owner_gid, j.owner_groups,
                        v.state, v.node, v.temp_path, v.temp_dev, v.temp_ino,
                        v.pid, v.pid_start_time, v.boot_id,
                        f.frame_rate, f.interlaced, j.variations, f.video_us, j.priority,
                        f.video_stream, f.width, f.height, j.state = 'cancelled'
                 FROM {VARIATIONS} WHERE {CLAIMABLE} AND f.id = (SELECT id FROM first)
                 ORDER BY v.idx LIMIT $4 FOR UPDATE OF v SKIP LOCKED"
            ),
            &[&after, &self.node, &self.lease_secs, &limit],
        )
        .await?;
        Ok(found
            .first()
            .map(|r| turn(r, after, 33))
            .map(|key| (key, found)))
    }

    async fn claim_probe(&self, tx: &Transaction<'_>, r: &Row) -> Result<Work> {
        let (file_id, attempt, job_id): (i64, i64, i64) =
            (r.get(0), r.get::<_, i64>(1) + 1, r.get(2));
        exec(
            tx,
            "UPDATE files SET state = 'running', node = $2, attempt = $3,
                 lease_until = now() + make_interval(secs => $4)
             WHERE id = $1",
            &[&file_id, &self.node, &attempt, &self.lease_secs],
        )
        .await?;
        exec(
            tx,
            "UPDATE jobs SET state = 'running' WHERE id = $1 AND state = 'queued'",
            &[&job_id],
        )
        .await?;
        Ok(Work::Probe {
            job_id,
            lease: Lease {
                id: file_id,
                attempt,
            },
            path: PathBuf::from(r.get::<_, String>(4)),
            input: place(r, 5),
            owner: credentials(r, 8),
        })
    }

    async fn claim_variation(&self, tx: &Transaction<'_>, r: &Row) -> Result<VariationWork> {
        let lease = Lease {
            id: r.get(0),
            attempt: r.get::<_, i64>(1) + 1,
        };
        let output_dir = place(r, 10);
        let input = PathBuf::from(r.get::<_, String>(6));
        let index = r.get::<_, i32>(5) as u32;
        let temp = output_dir.path.join(temp_name(&input, index, lease));
        let previous = (r.get::<_, String>(21) == "running").then(|| {
            Box::new(Interrupted {
                lease: Lease {
                    id: lease.id,
                    attempt: lease.attempt - 1,
                },
                temp_path: r.get::<_, Option<String>>(23).map(PathBuf::from),
                output_dir: output_dir.clone(),
                temp_identity: identity(r.get(24), r.get(25)),
                process: process(r, 26),
            })
        });
        if let Some(previous) = &previous
            && let Some(orphan) = &previous.process
        {
            // Only the node that ran it may judge and kill its process.
            let node: Option<String> = r.get(22);
            exec(
                tx,
                "INSERT INTO orphans (node, pid, pid_start_time, boot_id)
                 VALUES ($1, $2, $3, $4)",
                &[
                    &node.unwrap_or_default(),
                    &orphan.pid,
                    &(orphan.start_time as i64),
                    &orphan.boot_id,
                ],
            )
            .await?;
        }
        exec(
            tx,
            "UPDATE variations SET state = 'running', node = $2, attempt = $3,
                 lease_until = now() + make_interval(secs => $4), temp_path = $5,
                 temp_dev = NULL, temp_ino = NULL, pid = NULL, pid_start_time = NULL,
                 boot_id = NULL, error = NULL
             WHERE id = $1",
            &[
                &lease.id,
                &self.node,
                &lease.attempt,
                &self.lease_secs,
                &temp.to_string_lossy().into_owned(),
            ],
        )
        .await?;
        Ok(VariationWork {
            job_id: r.get(2),
            file_id: r.get(4),
            lease,
            index,
            input,
            input_place: place(r, 7),
            output_dir,
            media: Media {
                duration_us: r.get::<_, Option<i64>>(13).map(|d| d as u64),
                video_us: r.get::<_, Option<i64>>(32).map(|d| d as u64),
                frame_rate: r
                    .get::<_, Option<String>>(29)
                    .as_deref()
                    .and_then(FrameRate::parse),
                interlaced: r.get(30),
                stream: VideoStream::from_columns(
                    column_u32(r, 34),
                    column_u32(r, 35),
                    column_u32(r, 36),
                ),
            },
            variations: r.get::<_, i32>(31) as u32,
            effects: effects(r, 14),
            owner: credentials(r, 18),
            previous,
            cancelled: r.get(37),
        })
    }

    /// The next turn after job `after`: a probe, or up to `slots`
    /// variations of one file, each claimed with its own lease.
    pub(super) async fn claim(&self, after: JobId, slots: usize) -> Result<Option<Work>> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let probe = self.next_probe(&tx, after).await?;
        let variations = self.next_variations(&tx, after, slots).await?;
        let work = match (&probe, variations) {
            (Some((pk, p)), Some((vk, _))) if *pk < vk => Some(self.claim_probe(&tx, p).await?),
            (_, Some((_, batch))) => {
                let mut claimed = Vec::with_capacity(batch.len());
                for r in &batch {
                    claimed.push(self.claim_variation(&tx, r).await?);
                }
                Some(Work::Encode(claimed))
            }
            (Some((_, p)), None) => Some(self.claim_probe(&tx, p).await?),
            (None, None) => None,
        };
        // A probe claimed while its file runs, or a variation with what
        // a lost claim left, takes over another node's claim.
        let (claims, takeovers) = match (&work, &probe) {
            (Some(Work::Encode(batch)), _) => (
                batch.len(),
                batch.iter().filter(|w| w.previous.is_some()).count(),
            ),
            (Some(Work::Probe { .. }), Some((_, p))) => (1, usize::from(p.get::<_, bool>(12))),
            _ => (0, 0),
        };
        let counts = [
            Count::new(Counter::Claims, "", claims as f64),
            Count::new(Counter::Takeovers, "", takeovers as f64),
        ];
        let counts: Vec<Count> = counts.into_iter().filter(|c| c.by > 0.).collect();
        super::history::add_counts(&tx, &self.node, &counts).await?;
        tx.commit().await?;
        Ok(work)
    }

    pub(super) async fn finish_probe(
        &self,
        lease: Lease,
        media: Media,
        cpu_seconds: f64,
    ) -> Result<bool> {
        let client = self.pool.get().await?;
        let duration = media.duration_us.map(|d| d as i64);
        let rate = media.frame_rate.map(|r| r.to_string());
        let video = media.video_us.map(|d| d as i64);
        let stream = media.stream.map(|s| s.index as i32);
        let picture = media.stream.and_then(|s| s.picture);
        let (width, height) = (picture.map(|p| p.0 as i32), picture.map(|p| p.1 as i32));
        // Held: still this claim's, though a cancel may have settled the
        // file meanwhile (then nothing is recorded).
        let held: bool = one(
            &client,
            "WITH held AS (SELECT id FROM files WHERE id = $1 AND node = $2 AND attempt = $3),
                  probed AS (UPDATE files SET probed = true, duration_us = $4, frame_rate = $5,
                                 interlaced = $6, video_us = $7, video_stream = $8,
                                 width = $9, height = $10, lease_until = NULL
                             WHERE id IN (SELECT id FROM held) AND state = 'running'
                               AND NOT probed
                             RETURNING id),
                  shared AS (UPDATE variations SET probe_cpu_seconds = $11::float8
                                 / (SELECT COUNT(*) FROM variations WHERE file_id = $1)
                             WHERE file_id IN (SELECT id FROM probed))
             SELECT EXISTS (SELECT 1 FROM held)",
            &[
                &lease.id,
                &self.node,
                &lease.attempt,
                &duration,
                &rate,
                &media.interlaced,
                &video,
                &stream,
                &width,
                &height,
                &cpu_seconds.max(0.),
            ],
        )
        .await?
        .get(0);
        // Its variations can be claimed now, by any node.
        client.batch_execute(listen::NOTIFY).await?;
        Ok(held)
    }

    pub(super) async fn fail_file(
        &self,
        lease: Lease,
        error: String,
        run: RunFigures,
    ) -> Result<Option<JobState>> {
        let node = self.node.clone();
        self.in_tx(move |tx| {
            Box::pin(async move {
                lock_job(tx, "SELECT job_id FROM files WHERE id = $1", lease.id).await?;
                let held = opt(
                    tx,
                    "SELECT 1 FROM files WHERE id = $1 AND node = $2 AND attempt = $3",
                    &[&lease.id, &node, &lease.attempt],
                )
                .await?;
                if held.is_none() {
                    return Ok(None);
                }
                // Unless a cancel settled the file meanwhile.
                let failed = exec(
                    tx,
                    "UPDATE files SET state = 'failed', error = $2, lease_until = NULL
                     WHERE id = $1 AND state = 'running' AND NOT probed",
                    &[&lease.id, &error],
                )
                .await?;
                if failed == 1 {
                    let failed: Vec<i64> = rows(
                        tx,
                        "UPDATE variations SET state = 'failed', error = $2
                         WHERE file_id = $1 AND state = 'queued' RETURNING id",
                        &[&lease.id, &error],
                    )
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                    let share = run.share(failed.len());
                    for variation in failed {
                        let ended = (RunOutcome::Failed, None);
                        super::history::record_run(tx, &node, variation, ended, &share).await?;
                    }
                }
                let job = job_of_file(tx, lease.id).await?;
                settle_job(tx, job).await.map(Some)
            })
        })
        .await
    }

    pub(super) async fn set_temp(&self, lease: Lease, temp: FileIdentity) -> Result<()> {
        let client = self.pool.get().await?;
        exec(
            &client,
            "UPDATE variations SET temp_dev = $4, temp_ino = $5
                 WHERE id = $1 AND node = $2 AND attempt = $3 AND state = 'running'",
            &[
                &lease.id,
                &self.node,
                &lease.attempt,
                &(temp.dev as i64),
                &(temp.ino as i64),
            ],
        )
        .await?;
        Ok(())
    }

    pub(super) async fn set_process(&self, lease: Lease, process: ProcessIdentity) -> Result<()> {
        let client = self.pool.get().await?;
        exec(
            &client,
            "UPDATE variations SET pid = $4, pid_start_time = $5, boot_id = $6
                 WHERE id = $1 AND node = $2 AND attempt = $3 AND state = 'running'",
            &[
                &lease.id,
                &self.node,
                &lease.attempt,
                &process.pid,
                &(process.start_time as i64),
                &process.boot_id,
            ],
        )
        .await?;
        Ok(())
    }

    pub(super) async fn confirm(&self, lease: Lease) -> Result<bool> {
        let client = self.pool.get().await?;
        let held = exec(
            &client,
            "UPDATE variations SET lease_until = now() + make_interval(secs => $4)
                 WHERE id = $1 AND node = $2 AND attempt = $3 AND state = 'running'
                   AND temp_dev IS NOT NULL",
            &[&lease.id, &self.node, &lease.attempt, &self.lease_secs],
        )
        .await?;
        Ok(held == 1)
    }

    /// Renew this node's leases (see [`crate::queue::Queue::heartbeat`]);
    /// the database errors counted since the last beat are written to its
    /// counters in the same transaction.
    pub(super) async fn heartbeat(&self, beat: Beat) -> Result<Vec<Lease>> {
        let Beat {
            variations: held,
            probes,
            progress,
            slots,
        } = beat;
        let (node, lease_secs) = (self.node.clone(), self.lease_secs);
        let (errors, taken) = self.errors.take_into(Vec::new());
        let beat = self
            .in_tx(move |tx| {
                Box::pin(async move {
                    exec(
                        tx,
                        "UPDATE nodes SET heartbeat_at = now(), slots = $2 WHERE name = $1",
                        &[&node, &(slots as i32)],
                    )
                    .await?;
                    super::history::add_counts(tx, &node, &errors).await?;
                    let ids: Vec<i64> = held.iter().map(|l| l.id).collect();
                    let attempts: Vec<i64> = held.iter().map(|l| l.attempt).collect();
                    // Renew what is still ours; an expired lease not yet taken
                    // over is ours again.
                    exec(
                        tx,
                        "UPDATE variations v SET lease_until = now() + make_interval(secs => $2)
                     FROM unnest($3::bigint[], $4::bigint[]) AS h(id, attempt)
                     WHERE v.id = h.id AND v.attempt = h.attempt AND v.node = $1
                       AND v.state = 'running'",
                        &[&node, &lease_secs, &ids, &attempts],
                    )
                    .await?;
                    let (files, file_attempts): (Vec<i64>, Vec<i64>) =
                        probes.iter().map(|l| (l.id, l.attempt)).unzip();
                    exec(
                        tx,
                        "UPDATE files f SET lease_until = now() + make_interval(secs => $2)
                     FROM unnest($3::bigint[], $4::bigint[]) AS h(id, attempt)
                     WHERE f.id = h.id AND f.attempt = h.attempt AND f.node = $1
                       AND f.state = 'running' AND NOT f.probed",
                        &[&node, &lease_secs, &files, &file_attempts],
                    )
                    .await?;
                    let stop = rows(
                        tx,
                        "SELECT h.id, h.attempt
                         FROM unnest($2::bigint[], $3::bigint[]) AS h(id, attempt)
                         LEFT JOIN variations v ON v.id = h.id
                         LEFT JOIN files f ON f.id = v.file_id
                         LEFT JOIN jobs j ON j.id = f.job_id
                         WHERE v.id IS NULL OR v.node IS DISTINCT FROM $1
                            OR v.attempt <> h.attempt OR v.state <> 'running'
                            OR j.state = 'cancelled'",
                        &[&node, &ids, &attempts],
                    )
                    .await?
                    .iter()
                    .map(|r| Lease {
                        id: r.get(0),
                        attempt: r.get(1),
                    })
                    .collect();
                    raise_running_progress(tx, &progress).await?;
                    Ok(stop)
                })
            })
            .await;
        if beat.is_err() {
            self.errors.give_back(taken);
        }
        beat
    }
}
