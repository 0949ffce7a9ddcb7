//! Issue 7, part 1: batch throughput. One job of M inputs x N variations
//! through vidvard against a plain loop of the same encodes, one at a
//! time and with vidvard's parallelism (and, in the study, with FFmpeg's
//! threads or priority lowered); the runs are [`crate::loops`]'s, the
//! tables and targets printed here.

use crate::common::make_video;
use crate::common::stats::percentile;
use crate::control::seed_store;
use crate::daemon::Daemon;
use crate::loops::{
    BatchRun, DaemonSpec, LoopSpec, encodes, median, probe_cost, run_loop, run_vidvard,
};
use crate::report::{Report, Table};
use crate::{
    LOAD_POLL, Plan, STUDY_NICE, TARGET_OVERHEAD_PCT, TARGET_OVERHEAD_PCT_SHORT, TARGET_SPEEDUP,
};
use anyhow::Result;
use std::path::{Path, PathBuf};

pub fn batch(root: &Path, plan: &Plan, report: &mut Report) -> Result<()> {
    let dir = root.join("batch");
    let input_dir = dir.join("inputs");
    std::fs::create_dir_all(&input_dir)?;
    let inputs: Vec<PathBuf> = (1..=plan.inputs)
        .map(|i| input_dir.join(format!("in{i}.mp4")))
        .collect();
    eprintln!(
        "[batch] making {} input(s) of {} s {} ...",
        plan.inputs, plan.seconds, plan.size
    );
    for input in &inputs {
        make_video(input, plan.seconds, &plan.size, true);
    }
    let all = encodes(&inputs, plan.variations);
    let p = plan.parallel;
    const THREADS_1: &[&str] = &["-threads", "1", "-filter_threads", "1"];
    let plain = |parallel| LoopSpec {
        parallel,
        extra: &[],
        nice: None,
    };
    // An idle daemon with one finished job, asked for its status while the
    // loops run: what FFmpeg's CPU load alone does to the control plane.
    let idle_env = Daemon::prepare(&dir.join("idle-daemon"))?;
    seed_store(&Daemon::database(&idle_env), 1)?;
    let idle = Daemon::start(idle_env, "", None)?;
    let idle_socket = idle.socket();
    let poll = Some((idle_socket.as_path(), 1));

    struct Row {
        label: String,
        parallel: usize,
        runs: Vec<BatchRun>,
    }
    type RunFn<'a> = Box<dyn Fn() -> Result<BatchRun> + 'a>;
    let mut kinds: Vec<(String, usize, RunFn)> = vec![
        (
            "plain loop, one at a time".into(),
            1,
            Box::new(|| run_loop(&all, plain(1), &dir.join("loop-1"), poll)),
        ),
        (
            format!("plain loop, {p} at a time"),
            p,
            Box::new(|| run_loop(&all, plain(p), &dir.join("loop-p"), poll)),
        ),
        (
            "vidvard (one job, submit + watch)".into(),
            p,
            Box::new(|| {
                let spec = DaemonSpec {
                    max_parallel: Some(p),
                    config: "",
                    stages: false,
                };
                run_vidvard(&dir.join("vidvard"), &inputs, plan.variations, spec)
            }),
        ),
    ];
    if plan.study {
        kinds.push((
            "study: loop, one at a time, -threads 1 -filter_threads 1".into(),
            1,
            Box::new(|| {
                let spec = LoopSpec {
                    extra: THREADS_1,
                    ..plain(1)
                };
                run_loop(&all, spec, &dir.join("study-1"), poll)
            }),
        ));
        kinds.push((
            format!("study: loop, {p} at a time, -threads 1 -filter_threads 1"),
            p,
            Box::new(|| {
                let spec = LoopSpec {
                    extra: THREADS_1,
                    ..plain(p)
                };
                run_loop(&all, spec, &dir.join("study-p"), poll)
            }),
        ));
        kinds.push((
            format!("study: loop, {p} at a time, FFmpeg under nice -n {STUDY_NICE}"),
            p,
            Box::new(|| {
                let spec = LoopSpec {
                    nice: Some(STUDY_NICE),
                    ..plain(p)
                };
                run_loop(&all, spec, &dir.join("study-nice"), poll)
            }),
        ));
    }
    let mut rows: Vec<Row> = kinds
        .iter()
        .map(|(label, parallel, _)| Row {
            label: label.clone(),
            parallel: *parallel,
            runs: Vec::new(),
        })
        .collect();
    for round in 0..plan.repeat {
        for (i, (label, _, run)) in kinds.iter().enumerate() {
            eprintln!(
                "[batch] round {} of {}: {label} ...",
                round + 1,
                plan.repeat
            );
            let r = run()?;
            eprintln!(
                "[batch]   wall {:.2} s, CPU {:.2} s, other load {:.2} cores",
                r.wall, r.cpu, r.other
            );
            rows[i].runs.push(r);
        }
    }
    drop(kinds);
    idle.stop()?;
    // Ratios within each round (the rows of one round ran minutes apart, not
    // hours), then their median: less exposed to a machine whose load drifts.
    let paired = |f: &dyn Fn(&BatchRun, &BatchRun, &BatchRun) -> f64| -> (f64, Vec<f64>) {
        let mut per_round: Vec<f64> = (0..plan.repeat)
            .map(|i| f(&rows[0].runs[i], &rows[1].runs[i], &rows[2].runs[i]))
            .collect();
        let listed = per_round.clone();
        per_round.sort_by(f64::total_cmp);
        (per_round[per_round.len() / 2], listed)
    };
    let (speedup, speedups) = paired(&|seq, _, vid| seq.wall / vid.wall);
    let (overhead, overheads) = paired(&|_, par, vid| (vid.wall / par.wall - 1.0) * 100.0);
    let (cpu_overhead, _) = paired(&|_, par, vid| (vid.cpu / par.cpu - 1.0) * 100.0);
    let results: Vec<(String, usize, BatchRun)> = rows
        .into_iter()
        .map(|r| (r.label, r.parallel, median(r.runs)))
        .collect();
    let seq = results[0].2.clone();
    let par = results[1].2.clone();

    let files = &inputs;
    let probes = probe_cost(files)?;

    println!(
        "\n## Batch throughput\n\n{} input(s) x {} variation(s) = {} encodes; inputs {} s {} \
         testsrc2 25 fps + sine (AAC), H.264 ultrafast; vidvard's argv (libx264 ultrafast 2000k, \
         29.97 fps, AAC). Parallelism {p}{}. CPU = user+sys of the FFmpeg processes (and of \
         vidvard). \"Other load\" = cores used meanwhile by processes outside this benchmark \
         (from /proc/stat); anything above ~0.05 means a noisy machine.\n",
        plan.inputs,
        plan.variations,
        all.len(),
        plan.seconds,
        plan.size,
        if plan.parallel_is_default {
            " (the number of CPU cores)"
        } else {
            " (--max-parallel)"
        }
    );
    let mut table = Table::new(&[
        "run",
        "parallel",
        "wall s",
        "CPU s",
        "cores busy",
        "other load",
        "speedup vs one at a time",
    ]);
    for (label, parallel, r) in &results {
        table.row(vec![
            label.clone(),
            parallel.to_string(),
            format!("{:.2}", r.wall),
            format!("{:.2}", r.cpu),
            format!("{:.2}", r.cores()),
            format!("{:.2}", r.other),
            format!("{:.2}x", seq.wall / r.wall),
        ]);
    }
    table.print();
    for (label, _, r) in &results {
        if !r.note.is_empty() {
            println!("- {label}: {}", r.note);
        }
    }
    if plan.repeat > 1 {
        let list = |v: &[f64], unit: &str| {
            v.iter()
                .map(|x| format!("{x:.2}{unit}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "- per round: vidvard vs one at a time {}; vidvard vs {p} at a time {} (the \
             ratios below and the targets take the median of these paired ratios)",
            list(&speedups, "x"),
            list(&overheads, "%")
        );
    }
    println!(
        "- vidvard vs one at a time: {speedup:.2}x; vidvard vs {p} at a time: {overhead:+.1}% \
         wall, {cpu_overhead:+.1}% CPU"
    );
    println!(
        "- FFmpeg alone: one encode at a time keeps {:.2} cores busy; {p} at a time {:.2} \
         ({:.2}x the throughput of one at a time)",
        seq.cores(),
        par.cores(),
        seq.wall / par.wall
    );
    println!(
        "- vidvard's extra processes: {} ffprobe runs (one per input) take {:.2} s wall / \
         {:.2} s CPU one after another ({:.1}% of the {p}-at-a-time loop's wall if spread over \
         {p} slots); besides, one check (an FFmpeg run) per output, and the encodes write \
         reference pictures of their sampled frames and make those frames keyframes",
        files.len(),
        probes.wall,
        probes.cpu,
        probes.wall / p as f64 / par.wall * 100.0
    );
    println!(
        "- vidvard's wall time ends when `vidvarctl watch` returns: the server sends a job's \
         final state as soon as it is recorded."
    );
    println!(
        "\nControl plane under load: a `status` round trip every {} ms on one protocol \
         connection during each run; for the loops to an idle vidvard holding one finished job \
         (so only FFmpeg's CPU load acts on it), for vidvard to the daemon doing the work. ms:\n",
        LOAD_POLL.as_millis()
    );
    let mut table = Table::new(&["during", "status p50", "p99", "max", "requests"]);
    for (label, _, r) in &results {
        let s = &r.status_under_load;
        table.row(vec![
            label.clone(),
            format!("{:.2}", percentile(s, 50.0)),
            format!("{:.2}", percentile(s, 99.0)),
            format!("{:.2}", percentile(s, 100.0)),
            s.len().to_string(),
        ]);
    }
    table.print();
    report.target(
        format!("batch throughput >= {TARGET_SPEEDUP}x the one-at-a-time loop"),
        format!("{speedup:.2}x"),
        speedup >= TARGET_SPEEDUP,
    );
    let allowed = if plan.seconds < 10.0 {
        TARGET_OVERHEAD_PCT_SHORT
    } else {
        TARGET_OVERHEAD_PCT
    };
    report.target(
        format!(
            "batch ({} s clips, check included) within {allowed}% of the {p}-at-a-time loop",
            plan.seconds
        ),
        format!("{overhead:+.1}%"),
        overhead <= allowed,
    );
    Ok(())
}
