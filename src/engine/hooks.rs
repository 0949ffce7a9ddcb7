//! The completion hook (`on_job_end` in vidvard.conf(5)): a program run
//! once each time a job becomes final, with the job described in its
//! environment and its outputs as JSON on its stdin.
//!
//! The hook owed is recorded by the queue in the write that ends the job
//! (see [`Queue::set_hooks`]) and claimed; its JSON and environment are
//! read, then the queue is told it starts ([`Queue::starting_hook`]: no
//! spawn unless the row still says the claim is this node's), then it is
//! spawned, its stdin written, its process recorded and its end recorded.
//! A queue call that fails is tried again until it succeeds (or the
//! daemon stops): a database error never drops an owed hook, nor leaves
//! a spawned hook without its stdin. The hook runs in a process group of
//! its own and outlives a killed daemon. That group is ended at the
//! hook's timeout and when the hook exits; a descendant that left it
//! (setsid) is on its own. So after any stop each owed hook is started
//! once: one never spawned is started after the restart, one whose
//! process was recorded is waited for (and held to its timeout) but not
//! started again. A hook runs twice only when the node running it is
//! lost mid-run: a daemon killed between the spawn and the record of the
//! process, a machine that rebooted while it ran, or, on a shared queue,
//! a node silent for its lease time, whose hooks another node takes over
//! ([`Queue::adopt_hooks`]): it waits for those whose process is on its
//! own machine and runs the others again.
//!
//! Environment (nothing else of the daemon's is passed on): `VIDVAR_JOB`,
//! `VIDVAR_STATE` (`succeeded`, `partial`, `failed` or `cancelled`),
//! `VIDVAR_OWNER_UID`, `VIDVAR_OWNER` (user name, else the uid),
//! `VIDVAR_OUTPUT_DIR`, `VIDVAR_INPUTS`, `VIDVAR_FAILED_INPUTS`,
//! `VIDVAR_VARIATIONS` (per input), `VIDVAR_OUTPUTS` (verified outputs),
//! `VIDVAR_LABELS` (one per line), and `PATH`
//! (`/usr/local/bin:/usr/bin:/bin`), `HOME`, `USER` and `LOGNAME` of the
//! user it runs as. Its stdin is what `vidvarctl --json outputs JOB`
//! prints; its stdout is discarded and the last line of its stderr is
//! logged when it fails.

use super::Engine;
use crate::config::Hook;
use crate::history::{Count, Counter, HookResult};
use crate::job::FileState;
use crate::process::{ProcessIdentity, RunAs};
use crate::proto::{JobId, OutputInfo};
use crate::queue::{HookRun, JobRow, QueueError, unix_now};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Pid, Uid, User};
use std::future::Future;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

/// Hooks running at once; more wait their turn.
pub const MAX_RUNNING_HOOKS: usize = 4;
/// How often owed hooks are looked for when nothing announced one (jobs
/// ended by other nodes of a shared queue are announced too).
const POLL: Duration = Duration::from_secs(5);
/// First wait before a failed queue call about a hook is made again; the
/// wait doubles after each failure, up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(500);
/// Longest wait between two tries of a queue call about a hook.
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How often an adopted hook (started before a restart) is checked.
const ADOPTED_POLL: Duration = Duration::from_millis(250);
/// How often a hook's process group is looked at while it ends.
const GROUP_POLL: Duration = Duration::from_millis(50);
/// Bytes of a hook's stderr kept for the log.
const STDERR_TAIL: usize = 4096;
/// `PATH` of a hook, as cron(8) gives its jobs.
const HOOK_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

impl Engine {
    /// Until shutdown: run the hooks owed, first waiting for those that a
    /// stop left running, and taking over those of lost nodes. Returns at
    /// once when no hook is configured.
    pub async fn run_hooks(self: Arc<Self>) {
        let Some(hook) = self.settings.hook.clone() else {
            return;
        };
        let hook = Arc::new(hook);
        let Some(runs) = self
            .persist("read the hooks a stop left running", || {
                self.queue.hooks_left_running()
            })
            .await
        else {
            return;
        };
        for run in runs {
            tokio::spawn(Arc::clone(&self).adopt(Arc::clone(&hook), run));
        }
        let slots = Arc::new(Semaphore::new(MAX_RUNNING_HOOKS));
        let mut changes = self.subscribe();
        let mut adopted_at: Option<tokio::time::Instant> = None;
        loop {
            if adopted_at.is_none_or(|at| at.elapsed() >= POLL) {
                adopted_at = Some(tokio::time::Instant::now());
                match self.queue.adopt_hooks().await {
                    Ok(runs) => {
                        for run in runs {
                            log::warn!(
                                "job {}: its hook (pid {}) ran on a node that is lost; \
                                 this node takes it over",
                                run.job_id,
                                run.process.as_ref().map_or(0, |p| p.pid)
                            );
                            tokio::spawn(Arc::clone(&self).adopt(Arc::clone(&hook), run));
                        }
                    }
                    Err(err) => log::error!("cannot take over the hooks of lost nodes: {err}"),
                }
            }
            loop {
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                match self.queue.claim_hook().await {
                    Ok(Some(run)) => {
                        let (engine, hook) = (Arc::clone(&self), Arc::clone(&hook));
                        tokio::spawn(async move {
                            engine.run_hook(&hook, run).await;
                            drop(slot);
                        });
                    }
                    Ok(None) => break,
                    Err(err) => {
                        log::error!("cannot claim a job's hook: {err}");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = changes.changed() => {}
                () = tokio::time::sleep(POLL) => {}
                () = self.stopping.cancelled() => return,
            }
        }
    }

    /// `call` until it succeeds, waiting longer after each failure (logged
    /// with `what`, from [`RETRY_FIRST`] to [`RETRY_MAX`]); `None` once
    /// the daemon stops. A hook's row is never given up on an error: what
    /// a stop leaves is settled at the restart ([`Queue::hooks_left_running`]).
    async fn persist<T, F: Future<Output = Result<T, QueueError>>>(
        &self,
        what: &str,
        mut call: impl FnMut() -> F,
    ) -> Option<T> {
        let mut wait = RETRY_FIRST;
        loop {
            match call().await {
                Ok(value) => return Some(value),
                Err(err) => log::warn!("cannot {what}: {err}; trying again in {wait:?}"),
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.stopping.cancelled() => return None,
            }
            wait = (wait * 2).min(RETRY_MAX);
        }
    }

    /// Run one claimed hook to its end or its timeout, then record it done.
    async fn run_hook(&self, hook: &Hook, run: HookRun) {
        let job_id = run.job_id;
        let what = format!("read job {job_id} for its hook");
        let Some(prepared) = self.persist(&what, || self.prepare(hook, &run)).await else {
            return;
        };
        let Some((mut command, stdin, state)) = prepared else {
            log::warn!("job {job_id}: gone before its hook ran (pruned)");
            return self.hook_done(job_id, None).await;
        };
        let what = format!("record that job {job_id}'s hook starts");
        match self
            .persist(&what, || self.queue.starting_hook(job_id))
            .await
        {
            None => return,
            Some(false) => {
                return log::info!(
                    "job {job_id}: its hook is no longer this node's to start (taken over, \
                     or owed again for a new end of the job)"
                );
            }
            Some(true) => {}
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(err) => {
                log::warn!("job {job_id}: hook {} not run: {err}", hook.argv[0]);
                return self.hook_done(job_id, Some(HookResult::NotStarted)).await;
            }
        };
        if let Some(mut pipe) = child.stdin.take() {
            // A hook that does not read its stdin closes the pipe: no error.
            tokio::spawn(async move {
                let _ = pipe.write_all(&stdin).await;
            });
        }
        let pid = child.id().map(|p| p as i32);
        log::info!(
            "job {job_id}: hook {} started (pid {}), {state}",
            hook.argv[0],
            pid.unwrap_or(0),
        );
        let identity = pid.and_then(|p| ProcessIdentity::of(p).ok());
        let what = format!("record the process of job {job_id}'s hook");
        let record = async {
            if let Some(identity) = identity {
                let call = || self.queue.set_hook_process(job_id, identity.clone());
                self.persist(&what, call).await;
            }
        };
        let wait = self.wait_hook(hook, job_id, child);
        tokio::pin!(wait);
        let result = tokio::select! {
            result = &mut wait => result,
            () = record => wait.await,
        };
        self.hook_done(job_id, Some(result)).await;
    }

    /// Read what the hook of a claimed job needs, before it is spawned:
    /// its command (environment included), its stdin (the job's outputs as
    /// JSON, as `vidvarctl --json outputs` prints them) and the job's
    /// state; `None` when the job is gone.
    async fn prepare(
        &self,
        hook: &Hook,
        run: &HookRun,
    ) -> Result<Option<(tokio::process::Command, Vec<u8>, &'static str)>, QueueError> {
        let Some(job) = self.queue.job(run.job_id).await? else {
            return Ok(None);
        };
        let files = self.queue.files(run.job_id).await?;
        let outputs: Vec<OutputInfo> = self
            .queue
            .outputs(run.job_id)
            .await?
            .into_iter()
            .map(OutputInfo::from)
            .collect();
        let stdin = serde_json::to_vec(&outputs).unwrap_or_default();
        let run_as = RunAs::for_owner(&run.owner);
        let runs_as = match run_as {
            Some(_) => run.owner.uid,
            None => nix::unistd::geteuid().as_raw(),
        };
        let owner_uid = job.owner_uid;
        let (owner, user) = tokio::task::spawn_blocking(move || {
            let name = |uid| User::from_uid(Uid::from_raw(uid)).ok().flatten();
            (name(owner_uid), name(runs_as))
        })
        .await
        .unwrap_or_default();
        let failed_inputs = files
            .iter()
            .filter(|f| f.state == FileState::Failed)
            .count();
        let mut command = crate::process::detached_command(hook.argv[0].as_ref(), run_as.as_ref());
        command
            .args(&hook.argv[1..])
            .env_clear()
            .env("PATH", HOOK_PATH)
            .envs(environment(
                &job,
                owner.as_ref(),
                failed_inputs,
                outputs.len(),
            ))
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(user) = &user {
            command
                .env("HOME", &user.dir)
                .env("USER", &user.name)
                .env("LOGNAME", &user.name);
        }
        Ok(Some((command, stdin, job.state.as_str())))
    }

    /// Wait for a hook this daemon spawned, stopping it at its timeout, and
    /// log how it ended, with the last line of its stderr, and return it.
    /// At its timeout and when it exits, whatever it left in its process
    /// group is ended too ([`end_group`]).
    async fn wait_hook(
        &self,
        hook: &Hook,
        job_id: JobId,
        mut child: tokio::process::Child,
    ) -> HookResult {
        let started = std::time::Instant::now();
        let pid = child.id().map(|p| Pid::from_raw(p as i32));
        let tail = Arc::new(std::sync::Mutex::new(Vec::new()));
        let reader = child.stderr.take().map(|pipe| {
            let tail = Arc::clone(&tail);
            tokio::spawn(async move {
                let mut chunk = [0u8; 4096];
                let mut pipe = pipe;
                while let Ok(n @ 1..) = pipe.read(&mut chunk).await {
                    let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                    tail.extend_from_slice(&chunk[..n]);
                    let excess = tail.len().saturating_sub(STDERR_TAIL);
                    tail.drain(..excess);
                }
            })
        });
        let grace = self.tunables().grace;
        let ended = |group: Option<Pid>| async move {
            if let Some(group) = group {
                end_group(group, grace).await;
            }
        };
        // `None`: stopped at its timeout (and reaped meanwhile).
        let status = match tokio::time::timeout(hook.timeout, child.wait()).await {
            Ok(status) => {
                ended(pid).await;
                Some(status)
            }
            Err(_) => {
                let _ = tokio::join!(ended(pid), child.wait());
                None
            }
        };
        if let Some(mut reader) = reader {
            // A descendant that left the group (setsid) may hold the pipe.
            if tokio::time::timeout(Duration::from_secs(1), &mut reader)
                .await
                .is_err()
            {
                reader.abort();
            }
        }
        let said = last_line(&tail.lock().unwrap_or_else(|e| e.into_inner()));
        let said = if said.is_empty() {
            said
        } else {
            format!(": {said}")
        };
        match status {
            None => {
                log::warn!(
                    "job {job_id}: hook {} stopped after its timeout of {:?}{said}",
                    hook.argv[0],
                    hook.timeout
                );
                HookResult::TimedOut
            }
            Some(Ok(s)) if s.success() => {
                log::info!(
                    "job {job_id}: hook exited 0 after {:.1} s",
                    started.elapsed().as_secs_f64()
                );
                HookResult::Succeeded
            }
            Some(Ok(s)) => {
                log::warn!("job {job_id}: hook {} failed ({s}){said}", hook.argv[0]);
                HookResult::Failed
            }
            Some(Err(err)) => {
                log::warn!("job {job_id}: cannot wait for its hook: {err}");
                HookResult::Unknown
            }
        }
    }

    /// Wait for a hook that an earlier run of the daemon started: until its
    /// process is gone, or its timeout (counted from its claim) stops it.
    async fn adopt(self: Arc<Self>, hook: Arc<Hook>, run: HookRun) {
        let job_id = run.job_id;
        let Some(process) = run.process.clone() else {
            // Never spawned: run it as a claimed hook.
            return self.run_hook(&hook, run).await;
        };
        if process.is_alive() {
            log::info!(
                "job {job_id}: its hook (pid {}) still runs from before the restart; \
                 waiting for it",
                process.pid
            );
            let deadline = run.started_at.saturating_add(hook.timeout.as_secs() as i64);
            let mut timed_out = false;
            while process.is_alive() && !timed_out {
                timed_out = unix_now() >= deadline;
                if !timed_out {
                    tokio::time::sleep(ADOPTED_POLL).await;
                }
            }
            // Its group ends with it, as with a hook this daemon spawned.
            end_group(Pid::from_raw(process.pid), self.tunables().grace).await;
            if timed_out {
                log::warn!(
                    "job {job_id}: hook stopped after its timeout of {:?}",
                    hook.timeout
                );
                return self.hook_done(job_id, Some(HookResult::TimedOut)).await;
            }
            log::info!("job {job_id}: its hook ended (exit status unknown after the restart)");
        } else {
            log::warn!(
                "job {job_id}: its hook (pid {}) ended while vidvard was stopped; \
                 its exit status is unknown",
                process.pid
            );
        }
        self.hook_done(job_id, Some(HookResult::Unknown)).await;
    }

    /// Record that the hook of `job_id` ran, then count its `result`
    /// (`None`: its job was gone, nothing ran), however long the queue
    /// takes to accept each.
    async fn hook_done(&self, job_id: JobId, result: Option<HookResult>) {
        let what = format!("record that job {job_id}'s hook ran");
        if self
            .persist(&what, || self.queue.finish_hook(job_id))
            .await
            .is_none()
        {
            return;
        }
        if let Some(result) = result {
            let what = format!("count job {job_id}'s hook run");
            let count = || {
                let ran = Count::new(Counter::HookRuns, result.as_str(), 1.);
                self.queue.add_counts(vec![ran])
            };
            self.persist(&what, count).await;
        }
    }
}

/// End a hook's process group `group` (the hook's pid): SIGTERM, then,
/// once the group is empty or after `grace`, SIGKILL to what is left.
/// A descendant that left the group (setsid(2), setpgid(2)) is not
/// reached: it is on its own (vidvard.conf(5), `on_job_end`).
async fn end_group(group: Pid, grace: Duration) {
    if killpg(group, Signal::SIGTERM).is_err() {
        return; // nothing left in it
    }
    let deadline = tokio::time::Instant::now() + grace;
    while killpg(group, None).is_ok() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(GROUP_POLL).await;
    }
    let _ = killpg(group, Signal::SIGKILL);
}

/// The `VIDVAR_*` variables describing a final job.
fn environment(
    job: &JobRow,
    owner: Option<&User>,
    failed_inputs: usize,
    outputs: usize,
) -> Vec<(&'static str, String)> {
    vec![
        ("VIDVAR_JOB", job.id.to_string()),
        ("VIDVAR_STATE", job.state.as_str().into()),
        ("VIDVAR_OWNER_UID", job.owner_uid.to_string()),
        (
            "VIDVAR_OWNER",
            owner.map_or_else(|| job.owner_uid.to_string(), |u| u.name.clone()),
        ),
        (
            "VIDVAR_OUTPUT_DIR",
            job.output_dir.to_string_lossy().into_owned(),
        ),
        ("VIDVAR_INPUTS", job.inputs.to_string()),
        ("VIDVAR_FAILED_INPUTS", failed_inputs.to_string()),
        ("VIDVAR_VARIATIONS", job.variations.to_string()),
        ("VIDVAR_OUTPUTS", outputs.to_string()),
        ("VIDVAR_LABELS", job.labels.join("\n")),
    ]
}

/// The last non-empty line of a hook's stderr, lossily decoded.
fn last_line(tail: &[u8]) -> String {
    String::from_utf8_lossy(tail)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_of_stderr_skips_blank_ones() {
        assert_eq!(
            last_line(b"first\nsecond: broken\n\n  \n"),
            "second: broken"
        );
        assert_eq!(last_line(b""), "");
        assert_eq!(last_line(b"\xffbad\n"), "\u{fffd}bad");
    }
}
