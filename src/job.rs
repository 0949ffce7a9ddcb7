//! The job domain model: what a job, its input files and their variations
//! are, who owns them, and the pure rules that settle their states and
//! measure their progress. Every backend of [`crate::queue`] and every view
//! of a job (`status`, `list`, `watch`) uses these rules and no copy of
//! them, so two views of one moment agree.
//!
//! A job has input files; each file has N variations. A variation is
//! queued, running, then succeeded, failed or cancelled. A file settles
//! when none of its variations is queued or running ([`settled_file`]); a
//! job settles when none of its files is ([`settled_job`]).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// Job ids are increasing integers assigned by the queue, starting at 1.
pub type JobId = i64;

/// State of a job. `Succeeded`, `Partial`, `Failed` and `Cancelled` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    /// Every input produced all its variations.
    Succeeded,
    /// Not every variation was verified, but some output exists (see
    /// [`settled_job`]).
    Partial,
    /// No output exists.
    Failed,
    Cancelled,
}

/// State of one input file of a job, or of one variation.
/// `Succeeded`, `Failed` and `Cancelled` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    /// Every state, in the order a job may pass through them.
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Partial,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// Lowercase name, as in `--json` output and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Partial => "partial",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job will change no more.
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

impl FileState {
    /// Lowercase name, as in `--json` output and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            FileState::Queued => "queued",
            FileState::Running => "running",
            FileState::Succeeded => "succeeded",
            FileState::Failed => "failed",
            FileState::Cancelled => "cancelled",
        }
    }

    /// Whether the file (or variation) will change no more.
    pub fn is_final(self) -> bool {
        !matches!(self, FileState::Queued | FileState::Running)
    }
}

/// A user's credentials (credentials(7)): who connected to the socket, and
/// so who owns the jobs they submit and as whom their FFmpeg runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (may include `gid`).
    pub groups: Vec<u32>,
}

impl Credentials {
    /// Whether these are root's, which may see and touch every job.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Whether `gid` is the primary or a supplementary group.
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

/// Device and inode number: which file this is, whatever its name
/// (stat(2) `st_dev`, `st_ino`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    pub dev: u64,
    pub ino: u64,
}

/// Whether device numbers are left out when files are compared: see
/// [`ignore_device_numbers`].
static DEVICES_DIFFER: AtomicBool = AtomicBool::new(false);

/// From now on, compare files by inode number alone. On a queue shared by
/// several hosts, each host numbers the devices of its network mounts its
/// own way (stat(2) `st_dev` of one NFS export differs from host to host),
/// while the inode number is the server's; the paths compared are walked
/// without symlinks either way.
pub fn ignore_device_numbers() {
    DEVICES_DIFFER.store(true, Ordering::Relaxed);
}

impl FileIdentity {
    /// Whether `self` and `other` name the same file (see
    /// [`ignore_device_numbers`]).
    pub fn same_file(&self, other: &FileIdentity) -> bool {
        self.ino == other.ino && (DEVICES_DIFFER.load(Ordering::Relaxed) || self.dev == other.dev)
    }
}

/// A file as vetted at submit ([`crate::access::vetted::vet`]): where it
/// really is and which file it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vetted {
    /// Absolute path without symlinks, `.` or `..`.
    pub real: PathBuf,
    pub identity: FileIdentity,
}

/// A claim on one piece of work: the id of the variation (of the file, for
/// a probe) and the claim's attempt number, which grows with every claim
/// of that work. A backend shared by several nodes fences every write about
/// claimed work with it (and with the node): once the claim was lost (it
/// expired and another node claimed the work), such writes are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    pub id: i64,
    pub attempt: i64,
}

/// What the probe of an input found that its encodes need.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Media {
    /// Duration of the streams that are encoded (the video stream chosen
    /// by [`crate::ffmpeg::probe::parse`] and the first audio stream),
    /// microseconds; `None` when unknown.
    pub duration_us: Option<u64>,
    /// Where the video stream ends, microseconds from the start; `None`
    /// when unknown. The check samples frames up to here.
    pub video_us: Option<u64>,
    /// Frame rate of the video stream, frames per second as a fraction
    /// (ffprobe's `avg_frame_rate`, else `r_frame_rate`); `None` when
    /// unknown or variable without an average.
    pub frame_rate: Option<FrameRate>,
    /// The video is interlaced (ffprobe's `field_order` is `tt`, `bb`,
    /// `tb` or `bt`), so encodes deinterlace it.
    pub interlaced: bool,
    /// The video stream that is encoded; `None` for a file probed by a
    /// vidvard that did not store it (its encodes probe it again).
    pub stream: Option<VideoStream>,
}

/// The video stream of an input that is encoded, as the probe found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoStream {
    /// Index in the file (ffprobe's `index`, FFmpeg's `0:N`): see
    /// [`crate::ffmpeg::probe::parse`] for which stream.
    pub index: u32,
    /// Width and height in pixels of its pictures as FFmpeg decodes them:
    /// turned a quarter when its display matrix says so (FFmpeg's
    /// `-autorotate`, on by default); `None` when ffprobe states no size.
    pub picture: Option<(u32, u32)>,
}

impl VideoStream {
    /// The stream as the queue stores it (index, width and height
    /// columns): `None` without an index, no picture without both sides.
    pub fn from_columns(
        index: Option<u32>,
        width: Option<u32>,
        height: Option<u32>,
    ) -> Option<VideoStream> {
        index.map(|index| VideoStream {
            index,
            picture: width.zip(height),
        })
    }
}

/// A frame rate `num/den` frames per second, both positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRate {
    pub num: u32,
    pub den: u32,
}

impl FrameRate {
    /// Parse `num/den`, a whole number or a decimal of up to 6 places
    /// (`29.97` is 2997/100), as FFmpeg prints rates and as `-r` takes
    /// them. `None` for zero, negative, too precise or malformed rates.
    pub fn parse(text: &str) -> Option<FrameRate> {
        let text = text.trim();
        let (num, den) = match (text.split_once('/'), text.split_once('.')) {
            (Some((num, den)), _) => (num.parse().ok()?, den.parse().ok()?),
            (None, Some((whole, places))) if places.len() <= 6 => {
                let den = 10u32.pow(places.len() as u32);
                let value = format!("{whole}{places}").parse::<u32>().ok()?;
                (value, den)
            }
            (None, Some(_)) => return None,
            (None, None) => (text.parse().ok()?, 1),
        };
        (num > 0 && den > 0).then_some(FrameRate { num, den })
    }

    /// How long one frame lasts, microseconds.
    pub fn frame_us(self) -> u64 {
        (self.den as u64 * 1_000_000).div_ceil(self.num as u64)
    }
}

impl std::fmt::Display for FrameRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

/// The quality check's figures for one output: its picture compared, on
/// sampled frames spread over its whole length, with the input's picture
/// with the variation's effects applied (both scaled to the same size).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// Frames compared.
    pub samples: u32,
    /// Mean SSIM over the samples (FFmpeg's `ssim` filter, `All`: luma and
    /// chroma weighted), 0..=1 with 1 for identical pictures.
    pub ssim_mean: f64,
    /// Lowest SSIM of one sample.
    pub ssim_min: f64,
    /// Mean absolute difference of luma, 0..=255 (8-bit code values).
    pub luma_diff: f64,
}

/// How many of a file's variations are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VariationCounts {
    pub total: u64,
    /// Queued or running.
    pub open: u64,
    pub succeeded: u64,
    pub failed: u64,
}

/// How many of a job's files are in each state, and how many verified
/// outputs the job has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileCounts {
    pub total: u64,
    /// Queued or running.
    pub open: u64,
    pub succeeded: u64,
    /// Succeeded variations of all its files: the job's verified outputs.
    pub outputs: u64,
}

/// A file's progress in percent: its verified variations count whole, its
/// running ones by `running` (the sum of their percents, each 0-100), over
/// all `variations`. In 0-100; 0 for a file without variations.
pub fn file_progress(variations: u64, succeeded: u64, running: f64) -> f64 {
    if variations == 0 {
        return 0.0;
    }
    ((succeeded as f64 * 100.0 + running.max(0.0)) / variations as f64).min(100.0)
}

/// A job's progress in percent: the mean of its files' progress; 0 for a
/// job without files.
pub fn job_progress(files: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, count) = files
        .into_iter()
        .fold((0.0, 0u64), |(sum, n), p| (sum + p, n + 1));
    if count == 0 { 0.0 } else { sum / count as f64 }
}

/// Media time a running file still has to encode, microseconds: each of
/// its `variations` (of `duration_us` each) that is neither verified
/// (`succeeded`) nor running counts whole, each running one by what it has
/// left after its `out_time_us` (in `running`).
pub fn remaining_media_us(
    duration_us: u64,
    variations: u64,
    succeeded: u64,
    running: &[u64],
) -> u64 {
    let waiting = variations.saturating_sub(succeeded + running.len() as u64);
    let left: u64 = running.iter().map(|&t| duration_us.saturating_sub(t)).sum();
    waiting * duration_us + left
}

/// Media an encode must have made before its speed counts, in
/// microseconds: FFmpeg's `speed` is media time over wall time since it
/// started, so its first reports (start-up, a loaded machine) can be a
/// thousandth of the real rate and would put an ETA days away.
pub const SPEED_MIN_MEDIA_US: u64 = 1_000_000;

/// An encode's speed (FFmpeg's `-progress` `speed`, times real time) as
/// progress views use it: `None` until [`SPEED_MIN_MEDIA_US`] of media is
/// encoded, or while FFmpeg reports none.
pub fn usable_speed(out_time_us: u64, speed: Option<f64>) -> Option<f64> {
    speed.filter(|_| out_time_us >= SPEED_MIN_MEDIA_US)
}

/// Seconds until `remaining_us` of media is encoded at `speed` (the summed
/// speeds of the encodes working on it, each a multiple of real time), or
/// `None` when nothing encodes it (`speed` not above 0).
pub fn eta_secs(remaining_us: u64, speed: f64) -> Option<f64> {
    (speed > 0.0).then(|| remaining_us as f64 / 1e6 / speed)
}

/// The final state of a file whose variations are counted by `c`, or
/// `None` while one is queued or running: succeeded if all succeeded,
/// failed if any failed, else cancelled.
pub fn settled_file(c: VariationCounts) -> Option<FileState> {
    if c.open > 0 {
        None
    } else if c.succeeded == c.total {
        Some(FileState::Succeeded)
    } else if c.failed > 0 {
        Some(FileState::Failed)
    } else {
        Some(FileState::Cancelled)
    }
}

/// The final state of a job now in `state` whose files are counted by `c`,
/// or `None` when it has none to take: it is final already (a cancelled job
/// stays cancelled), or a file is queued or running. Succeeded if all files
/// succeeded, partial if any output exists (a file that lost only some of
/// its variations has some), failed if none does.
pub fn settled_job(state: JobState, c: FileCounts) -> Option<JobState> {
    if state.is_final() || c.open > 0 {
        None
    } else if c.succeeded == c.total {
        Some(JobState::Succeeded)
    } else if c.succeeded > 0 || c.outputs > 0 {
        Some(JobState::Partial)
    } else {
        Some(JobState::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_is_media_left_over_the_speed_of_what_runs() {
        // 5 variations of 10 s: 1 verified, 2 running at 4 s and 6 s.
        let left = remaining_media_us(10_000_000, 5, 1, &[4_000_000, 6_000_000]);
        assert_eq!(left, 2 * 10_000_000 + 6_000_000 + 4_000_000);
        assert_eq!(eta_secs(left, 2.0), Some(15.0));
        assert_eq!(eta_secs(left, 0.0), None);
        // A speed counts once a second of media is made.
        assert_eq!(usable_speed(40_000, Some(0.00004)), None);
        assert_eq!(usable_speed(SPEED_MIN_MEDIA_US, Some(1.5)), Some(1.5));
        // A running encode past the probed duration has nothing left.
        assert_eq!(remaining_media_us(1_000, 1, 0, &[2_000]), 0);
    }

    #[test]
    fn file_progress_counts_verified_whole_and_running_in_part() {
        assert_eq!(file_progress(4, 0, 50.0), 12.5);
        assert_eq!(file_progress(4, 2, 0.0), 50.0);
        assert_eq!(file_progress(2, 1, 100.0), 100.0);
        assert_eq!(file_progress(2, 2, 80.0), 100.0, "never past 100");
        assert_eq!(file_progress(0, 0, 10.0), 0.0);
        assert_eq!(file_progress(3, 0, -5.0), 0.0, "no negative share");
    }

    #[test]
    fn frame_rates_parse_as_ffmpeg_prints_them() {
        let ntsc = FrameRate::parse("30000/1001").unwrap();
        assert_eq!(ntsc.to_string(), "30000/1001");
        assert_eq!(ntsc.frame_us(), 33_367);
        assert_eq!(FrameRate::parse("25").unwrap().frame_us(), 40_000);
        assert_eq!(FrameRate::parse("1/1").unwrap().frame_us(), 1_000_000);
        assert_eq!(FrameRate::parse("29.97").unwrap().to_string(), "2997/100");
        for bad in [
            "0/0",
            "0/1",
            "25/0",
            "-1/2",
            "x",
            "",
            "0.0",
            "1.1234567",
            "1.-5",
        ] {
            assert_eq!(FrameRate::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn job_progress_is_the_mean_of_its_files() {
        assert_eq!(job_progress([100.0, 50.0]), 75.0);
        assert_eq!(job_progress([]), 0.0);
    }

    #[test]
    fn a_file_settles_once_nothing_is_open() {
        let c = |total, open, succeeded, failed| VariationCounts {
            total,
            open,
            succeeded,
            failed,
        };
        assert_eq!(settled_file(c(3, 1, 2, 0)), None);
        assert_eq!(settled_file(c(3, 0, 3, 0)), Some(FileState::Succeeded));
        assert_eq!(settled_file(c(3, 0, 2, 1)), Some(FileState::Failed));
        assert_eq!(settled_file(c(3, 0, 2, 0)), Some(FileState::Cancelled));
    }

    #[test]
    fn a_job_settles_by_its_files_and_cancelled_stays() {
        let c = |total, open, succeeded, outputs| FileCounts {
            total,
            open,
            succeeded,
            outputs,
        };
        let running = JobState::Running;
        assert_eq!(settled_job(running, c(2, 1, 1, 3)), None);
        assert_eq!(
            settled_job(running, c(2, 0, 2, 6)),
            Some(JobState::Succeeded)
        );
        assert_eq!(settled_job(running, c(2, 0, 1, 3)), Some(JobState::Partial));
        // Each file lost one variation of three: outputs all the same.
        assert_eq!(settled_job(running, c(2, 0, 0, 4)), Some(JobState::Partial));
        assert_eq!(settled_job(running, c(2, 0, 0, 0)), Some(JobState::Failed));
        assert_eq!(settled_job(JobState::Cancelled, c(2, 0, 2, 6)), None);
    }
}
