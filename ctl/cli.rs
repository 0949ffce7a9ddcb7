//! The command line of `vidvarctl`: its arguments, options and
//! subcommands as clap definitions, and nothing else, so that the man
//! page generator (tests/man_pages.rs) can use them too.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use vidvar::proto::{FolderId, JobId, JobState, MAX_PRIORITY, MAX_VARIATIONS, MIN_PRIORITY};

/// A `--priority` value: an integer in the protocol's range.
fn priority(text: &str) -> Result<i32, String> {
    let value: i32 = text
        .parse()
        .map_err(|_| format!("{text:?} is not an integer"))?;
    if (MIN_PRIORITY..=MAX_PRIORITY).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{value} is not in {MIN_PRIORITY}..={MAX_PRIORITY}"))
    }
}

/// A `--label` value, as the daemon accepts it.
fn label(text: &str) -> Result<String, vidvar::proto::LabelError> {
    vidvar::proto::check_label(text).map(|()| text.to_owned())
}

/// The forms a `--since` or `--older-than` value takes, as their help and
/// their errors give them.
const DURATION_FORMS: &str = "a number and a unit (s, m, h, d, w; also ms, min, \
     M for months, y), or several, e.g. 24h, 7d, 90m, 1h30m";

/// A `--since` or `--older-than` value: a length of time, as
/// [`humantime::parse_duration`] reads it. The error gives the accepted
/// forms, not the value: clap quotes that, and the option, before it.
fn duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text).map_err(|_| {
        let what = if text.trim_start().starts_with('-') {
            "a length of time cannot be negative"
        } else {
            "not a length of time"
        };
        format!("{what}; give {DURATION_FORMS}")
    })
}

/// The options of the jobs that `submit` and `folder add` make: how many
/// variations, the priority and the labels.
#[derive(clap::Args, Debug)]
pub struct JobOptions {
    /// Variations per input file (1..=1000)
    #[arg(
        short = 'n',
        long,
        default_value_t = 3,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_VARIATIONS))
    )]
    pub variations: u32,
    /// Higher runs first: queued work of a job of higher priority is
    /// started before any of lower priority; jobs of one priority take
    /// turns (-1000..=1000)
    #[arg(
        short = 'p',
        long,
        default_value_t = 0,
        value_name = "N",
        allow_negative_numbers = true,
        value_parser = priority
    )]
    pub priority: i32,
    /// A label for the job, to select it by with `list --label`
    /// (repeatable, at most 16, or 15 for a folder, whose jobs also carry
    /// folder:ID; 1 to 64 bytes, no control characters)
    #[arg(short = 'l', long = "label", value_name = "TEXT", value_parser = label)]
    pub labels: Vec<String>,
}

/// A `--state` value: a job state by its name.
fn state(text: &str) -> Result<JobState, String> {
    JobState::ALL
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| {
            let names: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
            format!("{text:?} is not a job state ({})", names.join(", "))
        })
}

/// Submit videos to vidvard, watch their progress and list the variations.
#[derive(Parser, Debug)]
#[command(
    name = "vidvarctl",
    version,
    after_help = format!(
        "Exit status: 0 success; 1 a job did not produce every variation, or another error; 2 \
         usage error; 3 vidvard not reachable, not answering, or gone, or its socket not \
         trustworthy, or its shared queue's database unreachable; 4 no such job or watch \
         folder; 5 request refused (missing or unreadable input or directory, out-of-range \
         value, full queue, a watch folder that would take its own outputs, non-UTF-8 path, \
         protocol mismatch, daemon shutting down, pausing the daemon without being root or its \
         user, retry of a job still queued or running or still being stopped by a cancel), or a \
         submission over the limits of {} inputs \
         and {} bytes per path, refused before it is sent; 6 nothing to do: cancel of a job \
         that had already ended (succeeded, partial, failed or cancelled), retry of a job that \
         succeeded; 128 + N top ended by signal N \
         (SIGTERM, SIGINT or SIGHUP: 143, 130, 129), the terminal given back first.",
        vidvar::proto::MAX_INPUTS,
        vidvar::proto::MAX_PATH_BYTES
    )
)]
pub struct Args {
    /// vidvard's socket [default: $XDG_RUNTIME_DIR/vidvard/vidvard.sock; as
    /// root or the vidvar user, or when that does not exist,
    /// /run/vidvard/vidvard.sock]
    #[arg(long, global = true, env = "VIDVAR_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// The user the system daemon runs as; a socket is trusted only when
    /// it and its directory belong to root, you or this user
    #[arg(
        long,
        global = true,
        env = "VIDVAR_SERVICE_USER",
        value_name = "USER",
        default_value = vidvar::paths::SERVICE_USER
    )]
    pub service_user: String,

    /// Print JSON instead of text: one document per command; for watch and
    /// submit --watch, one object per line, the last one final; errors as
    /// {"error": {"exit_status", "message"}}
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Queue a job of N variations of each FILE; prints its id
    ///
    /// The job's variations are made by vidvard as slots free up, higher
    /// priority first; the job id printed is what the other subcommands
    /// take.
    Submit {
        #[command(flatten)]
        job: JobOptions,
        /// Seed of the effect generator, to reproduce a job's effects
        #[arg(long, value_name = "S")]
        seed: Option<u64>,
        /// Directory for the outputs [default: the current directory]
        #[arg(short = 'o', long, value_name = "DIR")]
        output_dir: Option<PathBuf>,
        /// Follow the job until it ends, as `watch` does
        #[arg(long)]
        watch: bool,
        /// Input videos
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Show one job in detail, or a summary line per job
    ///
    /// With JOB, the job in detail, with the speed of its running
    /// variations and the estimated time left (on a shared queue other
    /// nodes' running variations too, with their node, their progress
    /// unknown: "-"); without, a summary line per job. Either starts with
    /// a line saying so while the daemon is paused.
    ///
    /// In text, paths, node names and each line of an error are escaped
    /// as by outputs, so that each stays on its line; --json gives them as
    /// they are.
    Status { job: Option<JobId> },
    /// Follow a job's progress until it ends
    ///
    /// Exit status 0 only if every variation succeeded.
    Watch { job: JobId },
    /// List a job's outputs with their effects and quality figures
    ///
    /// Tab-separated: path, size in bytes, input, index, effects, the
    /// quality check's figures (SSIM mean and lowest against the input with
    /// the effects, mean luma difference 0-255, frames sampled), and on a
    /// shared queue the node that made it.
    ///
    /// One line per output, whatever its name: in text, paths and node
    /// names are escaped (a backslash as \\, tab, newline and carriage
    /// return as \t, \n and \r, any other control character as \xHH, its
    /// code point in hex); --json gives them as they are.
    Outputs { job: JobId },
    /// List jobs, a summary line each
    ///
    /// Your jobs (everyone's as root or the daemon's user), by job id: id,
    /// state, progress, inputs, variations, priority, created, labels; a
    /// paused job's state reads e.g. "queued*".
    List {
        /// Only jobs with this label
        #[arg(long, value_name = "TEXT")]
        label: Option<String>,
        /// Only jobs in this state (queued, running, succeeded, partial,
        /// failed, cancelled)
        #[arg(long, value_name = "STATE", value_parser = state)]
        state: Option<JobState>,
        /// At most N jobs [default: all]
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
        /// Only jobs after job JOB (the last one of the previous page)
        #[arg(long, value_name = "JOB", default_value_t = 0)]
        after: JobId,
    },
    /// Change the priority of a queued or running job
    ///
    /// From -1000 to 1000, higher first; running variations are not
    /// stopped.
    Priority {
        job: JobId,
        #[arg(allow_negative_numbers = true, value_parser = priority)]
        priority: i32,
    },
    /// Pause the daemon, or one of your jobs
    ///
    /// Without JOB the daemon (root or the daemon's user only), with JOB
    /// that job: no new variation or probe starts; running ones finish.
    /// Survives a restart of the daemon.
    Pause {
        job: Option<JobId>,
        /// Stop the running variations too, and queue them again (on a
        /// shared queue, with JOB: this node's variations only)
        #[arg(long)]
        stop: bool,
    },
    /// Undo pause: of the daemon, or with JOB of that job
    Resume { job: Option<JobId> },
    /// Wait until every JOB has ended
    ///
    /// Exit status 0 only if all of them succeeded (exit statuses as for
    /// watch).
    ///
    /// To have vidvard itself run a program whenever a job ends, with no
    /// client waiting, set on_job_end in vidvard.conf(5).
    Wait {
        /// Jobs to wait for
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        jobs: Vec<JobId>,
        /// Every queued or running job of yours
        #[arg(long)]
        all: bool,
    },
    /// Cancel a job: stop its FFmpeg processes and drop queued work
    ///
    /// Answers once the job's FFmpeg processes are gone (within the grace
    /// period; on a shared queue, every node's, waiting at most the grace
    /// period and lease_timeout). The job reads cancelled from the start,
    /// so `wait` and `watch` may end, and a second cancel answers, while
    /// they are still being stopped. A job that had already ended (succeeded, partial,
    /// failed or cancelled) is left as it is: "job N had already
    /// succeeded: nothing to cancel", exit status 6.
    Cancel { job: JobId },
    /// Re-queue the variations of a job that did not succeed
    ///
    /// Of a failed, partial, cancelled or interrupted job; verified outputs
    /// are kept; a job its owner paused stays paused (`resume JOB`). A job
    /// that succeeded is left as it is: "job N had already succeeded:
    /// nothing to retry", exit status 6. A job still queued or running, or
    /// still being stopped by a cancel, is refused (exit status 5).
    Retry { job: JobId },
    /// Check that vidvard answers: version, uptime, queue depth
    Ping,
    /// List the vidvard nodes sharing the queue
    ///
    /// Name, state (up, lost or stopped), slots, running variations, last
    /// heartbeat.
    Nodes,
    /// Watch everything at a glance, full screen
    ///
    /// The daemon's slots (on a shared queue, every live node's running
    /// variations and slots), queue depth and throughput, the running
    /// variations with their node, progress, speed and ETA (another node's
    /// with "-": only the node that runs one knows them), your jobs
    /// (everyone's as root or the daemon's user) by priority, those that
    /// ended lately with their worst SSIM, and recent failures; pushed by
    /// the daemon as they change. Keys: arrows or j/k select a job, Enter
    /// shows it, c cancels it, r retries it, p/P pause/resume it (the
    /// daemon with no job selected), ? help, q or Ctrl-C quit. NO_COLOR
    /// turns colour off.
    Top,
    /// Print the daemon's metrics for Prometheus
    ///
    /// In Prometheus's text format 0.0.4: variations by outcome, hook runs,
    /// claims, lease takeovers and database errors (counters that survive
    /// restarts and prune), the queue's depth, slots, running encodes and
    /// their frames per second, histograms of each variation's wall and
    /// encoded seconds and of its output's lowest SSIM, and on a shared
    /// queue each node's heartbeat. Figures only, no paths or labels: any
    /// user of the socket may read them. With --json, {"metrics": TEXT}.
    Metrics,
    /// Summarize the variations that ended lately
    ///
    /// Of your jobs (everyone's as root or the daemon's user): variations
    /// succeeded, failed, cancelled and requeued, media seconds encoded,
    /// CPU seconds (encode, check and a share of the input's probe) and
    /// wall seconds and the mean speed, the distribution of the
    /// outputs' lowest SSIM, failures by class (input, output, no_space,
    /// claim_lost, stalled, ffmpeg, stage, process, duration, check,
    /// quality, probe, internal) and, on a shared queue, the same per node.
    /// The daemon keeps 90 days of history; prune does not shorten it.
    Stats {
        /// How far back: a number and a unit (s, m, h, d, w; also ms, min,
        /// M for months, y), or several, e.g. 24h, 7d, 90m, 1h30m
        #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "24h",
              allow_hyphen_values = true)]
        since: std::time::Duration,
        /// Only variations of jobs with this label
        #[arg(long, value_name = "TEXT")]
        label: Option<String>,
    },
    /// Remove the records of finished jobs
    ///
    /// Yours; everyone's as root or the daemon's user. Output files are
    /// never deleted.
    Prune {
        /// Only jobs that finished at least this long ago: a number and a
        /// unit (s, m, h, d, w; also ms, min, M for months, y), or several,
        /// e.g. 7d, 12h, 30m, 1h30m
        #[arg(long, value_name = "DURATION", value_parser = duration, allow_hyphen_values = true)]
        older_than: Option<std::time::Duration>,
    },
    /// Watch folders: each video that lands in one becomes a job
    ///
    /// A file is taken once its size and modification time have not
    /// changed for --settle seconds, so a file still being copied is never
    /// taken; each file is taken once (by device, inode, size and mtime),
    /// whatever renames, rescans, restarts or other nodes. Hidden files
    /// and partial downloads (.part, .crdownload, .tmp, ~) are ignored.
    /// Each job carries the folder's labels and folder:ID. A folder is
    /// seen and changed by its owner only (and root).
    Folder {
        #[command(subcommand)]
        action: FolderCommand,
    },
    /// Print a shell completion script
    ///
    /// For bash, zsh, fish, elvish or powershell.
    Completions { shell: clap_complete::Shell },
}

/// A `--settle` or `--poll` value: whole seconds, 1 to a day.
fn interval(text: &str) -> Result<u32, String> {
    let max = vidvar::folder::MAX_INTERVAL_SECS;
    match text.parse::<u32>() {
        Ok(secs) if (1..=max).contains(&secs) => Ok(secs),
        _ => Err(format!("{text:?} is not a number of seconds in 1..={max}")),
    }
}

/// A `--after` value.
fn after(text: &str) -> Result<vidvar::folder::AfterAction, vidvar::folder::ActionError> {
    vidvar::folder::AfterAction::parse(text)
}

/// A `--failed` value.
fn failed(text: &str) -> Result<vidvar::folder::FailedAction, vidvar::folder::ActionError> {
    vidvar::folder::FailedAction::parse(text)
}

#[derive(Subcommand, Debug)]
pub enum FolderCommand {
    /// Watch DIR: each settled video in it becomes a job; prints the
    /// folder's id
    ///
    /// You must be able to read DIR and write OUTDIR; each file is checked
    /// again, as yours, when it is taken. OUTDIR may not be inside DIR
    /// (nor DIR inside OUTDIR).
    Add {
        /// The directory to watch
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// Directory for the outputs
        #[arg(short = 'o', long, value_name = "OUTDIR", required = true)]
        output_dir: PathBuf,
        #[command(flatten)]
        job: JobOptions,
        /// Seconds a file's size and mtime must stay the same before it is
        /// taken
        #[arg(long, value_name = "SECS", default_value_t = vidvar::folder::DEFAULT_SETTLE_SECS, value_parser = interval)]
        settle: u32,
        /// Seconds between rescans of the folder (use a short one on NFS or
        /// SMB mounts, where inotify sees nothing)
        #[arg(long, value_name = "SECS", default_value_t = vidvar::folder::DEFAULT_POLL_SECS, value_parser = interval)]
        poll: u32,
        /// No inotify watch: find files by the rescans only
        #[arg(long)]
        poll_only: bool,
        /// Take files in subdirectories too
        #[arg(long)]
        recursive: bool,
        /// What to do with a file whose job succeeded: keep, delete, or
        /// move:DIR
        #[arg(long, value_name = "ACTION", default_value = "keep", value_parser = after)]
        after: vidvar::folder::AfterAction,
        /// What to do with a file whose job failed or was partial: keep or
        /// move:DIR (never deleted)
        #[arg(long, value_name = "ACTION", default_value = "keep", value_parser = failed)]
        failed: vidvar::folder::FailedAction,
    },
    /// List your folders: id, state, files taken, directory and output
    /// directory
    List,
    /// Show one folder with its settings
    Show { folder: FolderId },
    /// Stop watching a folder (its jobs stay)
    Remove { folder: FolderId },
    /// Pause a folder: nothing is taken from it until resume
    Pause { folder: FolderId },
    /// Resume a paused folder (it is scanned at once)
    Resume { folder: FolderId },
}
