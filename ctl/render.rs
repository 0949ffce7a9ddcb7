//! Human-readable output of daemon answers.

use std::time::{Duration, UNIX_EPOCH};
use vidvar::proto::{FileState, FileStatus, JobDetail, JobSummary, NodeInfo, OutputInfo, Pong};

/// A file's progress: percent, or the encoded media time when the input's
/// duration is unknown (no percent is invented then).
fn amount(f: &FileStatus) -> String {
    match f.encoded_secs {
        Some(secs) => format!("{secs:.1}s"),
        None => format!("{:.1}%", f.progress),
    }
}

fn time(unix: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64))
        .to_string()
}

/// `status JOB`: the job, then one block per input.
pub fn detail(d: &JobDetail) -> String {
    let s = &d.summary;
    let mut out = format!(
        "job {}: {} {:.1}%\n  created {}, {} input(s) x {} variation(s), seed {}\n  output dir {}\n",
        s.id,
        s.state.as_str(),
        s.progress,
        time(s.created_at),
        s.inputs,
        s.variations,
        d.seed,
        d.output_dir.display()
    );
    for f in &d.files {
        out.push_str(&format!(
            "  {:<9} {:>6}  {}/{}  {}\n",
            f.state.as_str(),
            amount(f),
            f.done_variations,
            s.variations,
            f.path.display()
        ));
        if !f.nodes.is_empty() {
            out.push_str(&format!("      on {}\n", f.nodes.join(", ")));
        }
        if let Some(error) = &f.error {
            for line in error.lines() {
                out.push_str(&format!("      {line}\n"));
            }
        }
    }
    out
}

/// `list`: a header and one line per job.
pub fn summaries(jobs: &[JobSummary]) -> String {
    let mut out = format!(
        "{:>5}  {:<9}  {:>6}  {:>6}  {:>10}  {}\n",
        "JOB", "STATE", "DONE", "INPUTS", "VARIATIONS", "CREATED"
    );
    for j in jobs {
        out.push_str(&format!(
            "{:>5}  {:<9}  {:>5.1}%  {:>6}  {:>10}  {}\n",
            j.id,
            j.state.as_str(),
            j.progress,
            j.inputs,
            j.variations,
            time(j.created_at)
        ));
    }
    out
}

/// `outputs`: one tab-separated line per file: path, size in bytes, input,
/// index, effects, the quality check's figures (`unchecked` when there are
/// none), and the node that made it when there is one.
pub fn outputs(list: &[OutputInfo]) -> String {
    list.iter()
        .map(|o| {
            let node = o
                .node
                .as_ref()
                .map_or(String::new(), |n| format!("\tnode={n}"));
            let quality = o.quality.map_or("unchecked".into(), |q| {
                format!(
                    "ssim={:.4} ssim_min={:.4} luma_diff={:.2} samples={}",
                    q.ssim_mean, q.ssim_min, q.luma_diff, q.samples
                )
            });
            format!(
                "{}\t{}\t{}\t{}\trotation={} brightness={} contrast={} saturation={}\t{quality}{node}\n",
                o.path.display(),
                o.size,
                o.input.display(),
                o.index,
                o.effects.rotation,
                o.effects.brightness,
                o.effects.contrast,
                o.effects.saturation
            )
        })
        .collect()
}

/// `nodes`: a header and one line per node.
pub fn nodes(list: &[NodeInfo]) -> String {
    let mut out = format!(
        "{:<20}  {:<7}  {:>5}  {:>7}  {:<20}  {}\n",
        "NODE", "STATE", "SLOTS", "RUNNING", "LAST HEARTBEAT", "HOST"
    );
    for n in list {
        out.push_str(&format!(
            "{:<20}  {:<7}  {:>5}  {:>7}  {:<20}  {}\n",
            n.name,
            n.state.as_str(),
            n.slots,
            n.running,
            time(n.last_heartbeat),
            n.host
        ));
    }
    out
}

/// Inputs named on one `watch` line; the others are counted.
const LINE_FILES: usize = 4;

/// One line of `watch`: overall progress, then the inputs being worked on
/// (at most [`LINE_FILES`]) and how many are done.
pub fn progress_line(d: &JobDetail) -> String {
    let mut line = format!(
        "job {}: {} {:.1}%",
        d.summary.id,
        d.summary.state.as_str(),
        d.summary.progress
    );
    let running: Vec<&FileStatus> = d
        .files
        .iter()
        .filter(|f| f.state == FileState::Running)
        .collect();
    for f in running.iter().take(LINE_FILES) {
        let name = f.path.file_name().map_or_else(
            || f.path.display().to_string(),
            |n| n.to_string_lossy().into(),
        );
        line.push_str(&format!(
            " | {name} {} ({}/{})",
            amount(f),
            f.done_variations,
            d.summary.variations
        ));
    }
    if running.len() > LINE_FILES {
        line.push_str(&format!(" | {} more running", running.len() - LINE_FILES));
    }
    let done = d.files.iter().filter(|f| f.state.is_final()).count();
    if d.files.len() > 1 {
        line.push_str(&format!(" | {done}/{} inputs done", d.files.len()));
    }
    line
}

pub fn pong(p: &Pong) -> String {
    let node = p
        .node
        .as_ref()
        .map_or(String::new(), |n| format!(", node {n}"));
    format!(
        "vidvard {} (protocol {}){node}, up {}, {} job(s) queued or running, {} FFmpeg \
         process(es)\n",
        p.daemon_version,
        p.protocol,
        humantime::format_duration(Duration::from_secs(p.uptime_secs)),
        p.queue_depth,
        p.running_processes
    )
}
