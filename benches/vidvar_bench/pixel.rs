//! Issue 24's benchmark (`-- --pixel-path`): vidvard at its defaults (the
//! pixel path) against the README's plain recipe run 2 at a time, on the
//! same inputs and variations, for each shape of input the issue names;
//! the median of the rounds, with each round's ratio; the CPU per
//! variation by stage ([`crate::stages`]); the peak RSS of `vidvar-stage`
//! at 1920x1080 with 5 variations. `--sweep` times vidvard once per
//! `max_parallel` instead, to choose the default.

use crate::common::make_video;
use crate::loops::{BatchRun, DaemonSpec, LoopSpec, encodes, median, run_loop, run_vidvard};
use crate::report::{Report, Table};
use crate::stages::{Role, Stages};
use anyhow::{Context, Result, ensure};
use std::path::{Path, PathBuf};

/// The plain loop's parallelism: two at a time, as a user of a 2-core
/// machine would run the README's recipe.
const LOOP_PARALLEL: usize = 2;
/// Issue 24: the stage's peak RSS at 1920x1080 with 5 variations.
const TARGET_STAGE_MIB: f64 = 64.0;
/// Size, variations and length of the extra run that reads the stage's
/// RSS when the shapes' runs gave it fewer variations at once.
const RSS_SIZE: &str = "1920x1080";
const RSS_VARIATIONS: u32 = 5;
const RSS_SECONDS: f64 = 3.0;

/// One shape of input of the targets.
pub struct Shape {
    /// Its name on the command line (`--shapes`).
    pub key: &'static str,
    inputs: u32,
    variations: u32,
    seconds: f64,
    size: &'static str,
    /// Throughput of vidvard over the loop's, at least.
    target: f64,
}

/// The shapes: lavfi `testsrc2` at 25 fps with a sine (AAC), made
/// by the test kit.
pub const SHAPES: &[Shape] = &[
    Shape {
        key: "720p",
        inputs: 4,
        variations: 5,
        seconds: 10.0,
        size: "1280x720",
        target: 2.5,
    },
    Shape {
        key: "1080p",
        inputs: 4,
        variations: 5,
        seconds: 10.0,
        size: "1920x1080",
        target: 3.0,
    },
    Shape {
        key: "short",
        inputs: 4,
        variations: 5,
        seconds: 3.0,
        size: "1280x720",
        target: 2.0,
    },
    Shape {
        key: "camera",
        inputs: 3,
        variations: 4,
        seconds: 5.0,
        size: "1280x720",
        target: 2.0,
    },
];

/// What `--pixel-path` runs.
pub struct PixelPlan {
    pub shapes: Vec<&'static Shape>,
    pub rounds: usize,
    /// `max_parallel` values to time vidvard at, instead of the rounds.
    pub sweep: Vec<usize>,
    /// A real clip, run as the "camera" shape (3 copies x 4 variations).
    pub clip: Option<PathBuf>,
    /// Also run vidvard with `pixel_path = "ffmpeg"`, in the first round:
    /// the daemon as it was before the pixel path.
    pub ffmpeg_path: bool,
    /// vidvard's `max_parallel` in the rounds; `None`: its default.
    pub max_parallel: Option<usize>,
}

/// The inputs of one shape, made under `dir`: the kit's clips, or copies
/// of the real clip.
struct Inputs {
    label: String,
    files: Vec<PathBuf>,
    variations: u32,
    target: f64,
}

fn make_inputs(dir: &Path, shape: &Shape, clip: Option<&Path>) -> Result<Inputs> {
    std::fs::create_dir_all(dir)?;
    let files: Vec<PathBuf> = (1..=shape.inputs)
        .map(|i| dir.join(format!("in{i}.mp4")))
        .collect();
    for f in &files {
        match clip {
            Some(clip) => {
                std::fs::copy(clip, f).with_context(|| format!("copying {}", clip.display()))?;
            }
            None => make_video(f, shape.seconds, shape.size, true),
        }
    }
    let what = match clip {
        Some(clip) => format!("{} (real clip)", clip.display()),
        None => format!("{} s {}", shape.seconds, shape.size),
    };
    Ok(Inputs {
        label: format!("{what}, {} x {}", shape.inputs, shape.variations),
        files,
        variations: shape.variations,
        target: shape.target,
    })
}

pub fn pixel_path(root: &Path, plan: &PixelPlan, report: &mut Report) -> Result<()> {
    let mut sets = Vec::new();
    for shape in &plan.shapes {
        eprintln!("[pixel] making the inputs of {} ...", shape.key);
        sets.push(make_inputs(&root.join(shape.key), shape, None)?);
    }
    if let Some(clip) = &plan.clip {
        let camera = SHAPES.iter().find(|s| s.key == "camera").expect("a shape");
        sets.push(make_inputs(&root.join("clip"), camera, Some(clip))?);
    }
    if plan.sweep.is_empty() {
        rounds(root, &sets, plan, report)
    } else {
        sweep(root, &sets, &plan.sweep)
    }
}

/// The loop, then vidvard (then its FFmpeg path), `plan.rounds` times per
/// set of inputs.
fn rounds(root: &Path, sets: &[Inputs], plan: &PixelPlan, report: &mut Report) -> Result<()> {
    let vidvar = DaemonSpec {
        max_parallel: plan.max_parallel,
        config: "",
        stages: true,
    };
    let ffmpeg = DaemonSpec {
        config: "pixel_path = \"ffmpeg\"\n",
        stages: false,
        ..vidvar
    };
    let mut headers = vec![
        "clips",
        "plain loop, 2 at a time",
        "vidvard",
        "vidvard vs the loop (per round)",
        "target",
    ];
    if plan.ffmpeg_path {
        headers.push("before: vidvard, pixel_path = ffmpeg (round 1)");
    }
    let mut throughput = Table::new(&headers);
    let mut by_stage = Table::new(&[
        "clips",
        "decode",
        "warp",
        "encode",
        "check",
        "probe",
        "daemon",
        "unaccounted",
        "vidvard",
        "plain loop",
    ]);
    let mut stage_peak = (0.0, 0);
    for set in sets {
        let all = encodes(&set.files, set.variations);
        let dir = root.join("runs");
        let mut loops = Vec::new();
        let mut daemons = Vec::new();
        let mut ffmpegs = Vec::new();
        for round in 1..=plan.rounds {
            eprintln!(
                "[pixel] {}: round {round} of {} ...",
                set.label, plan.rounds
            );
            let plain = LoopSpec {
                parallel: LOOP_PARALLEL,
                extra: &[],
                nice: None,
            };
            loops.push(logged(
                "plain loop",
                run_loop(&all, plain, &dir.join("loop"), None)?,
            ));
            daemons.push(logged(
                "vidvard",
                run_vidvard(&dir.join("vidvard"), &set.files, set.variations, vidvar)?,
            ));
            if plan.ffmpeg_path && round == 1 {
                ffmpegs.push(logged(
                    "vidvard, pixel_path = ffmpeg",
                    run_vidvard(&dir.join("ffmpeg"), &set.files, set.variations, ffmpeg)?,
                ));
            }
        }
        let ratios: Vec<f64> = loops
            .iter()
            .zip(&daemons)
            .map(|(l, d)| l.wall / d.wall)
            .collect();
        let (loop_mid, daemon_mid) = (median(loops.clone()), median(daemons.clone()));
        let speedup = loop_mid.wall / daemon_mid.wall;
        let mut row = vec![
            set.label.clone(),
            format!("{:.1} s", loop_mid.wall),
            format!("{:.1} s", daemon_mid.wall),
            format!("{speedup:.2}x ({})", listed(&ratios)),
            format!(">= {:.1}x", set.target),
        ];
        if plan.ffmpeg_path {
            let before = median(ffmpegs).wall;
            row.push(format!("{before:.1} s ({:.2}x)", loops[0].wall / before));
        }
        throughput.row(row);
        report.target(
            format!("{}: vidvard >= {:.1}x the loop", set.label, set.target),
            format!("{speedup:.2}x (median of {})", plan.rounds),
            speedup >= set.target,
        );
        let stages = daemon_mid.stages.as_ref().context("no per-stage CPU")?;
        by_stage.row(stage_row(
            &set.label,
            &daemon_mid,
            stages,
            &loop_mid,
            all.len(),
        ));
        for d in &daemons {
            let peak = d.stages.as_ref().map_or((0.0, 0), |s| s.stage_peak);
            if peak.1 > stage_peak.1 || (peak.1 == stage_peak.1 && peak.0 > stage_peak.0) {
                stage_peak = peak;
            }
        }
    }
    println!(
        "\n## The pixel path (issue 24)\n\nThe plain loop runs the README's recipe (vidvard's \
         effects and encode settings, `rotate` and `eq` in FFmpeg, no check) {LOOP_PARALLEL} at a \
         time; vidvard runs one job of all the inputs (the pixel path, max_parallel {}), quality \
         check included. Wall time from submit to the job's end; the median of {} rounds, each \
         round's ratio listed.\n",
        plan.max_parallel.map_or_else(
            || {
                let n = vidvar::config::default_parallelism(vidvar::config::PixelPath::Vidvar);
                format!("{n}, its default")
            },
            |n| n.to_string()
        ),
        plan.rounds
    );
    throughput.print();
    println!(
        "\nCPU seconds per variation by stage (the median round of vidvard; a decoder's and a \
         stage's time split evenly over the variations of their batch): from process \
         accounting, per process in whole ticks of 1/100 s; \"unaccounted\" is what those \
         ticks cut off (the children's total is exact, from the daemon's zombie) and any FFmpeg \
         that ended before its role was seen.\n"
    );
    by_stage.print();
    stage_rss(root, stage_peak, report)
}

/// One row of CPU per variation by stage.
fn stage_row(
    label: &str,
    daemon: &BatchRun,
    stages: &Stages,
    plain: &BatchRun,
    variations: usize,
) -> Vec<String> {
    let n = variations as f64;
    let of = |roles: &[Role]| -> f64 {
        roles
            .iter()
            .filter_map(|r| stages.cpu.get(r))
            .map(|(_, s)| s)
            // An empty sum is -0.0.
            .fold(0.0, |a, b| a + b)
    };
    let cells = [
        of(&[Role::Decode]),
        of(&[Role::Warp]),
        of(&[Role::Encode, Role::WholeEncode]),
        of(&[Role::Check]),
        of(&[Role::Probe]),
        stages.daemon,
        of(&[Role::Unseen]) + stages.unaccounted,
        daemon.cpu,
        plain.cpu,
    ];
    std::iter::once(label.to_string())
        .chain(cells.iter().map(|c| format!("{:.2}", c / n)))
        .collect()
}

/// The stage's peak RSS at 1920x1080 with 5 variations: from the rounds
/// when a stage there served 5, else from one run of its own with 5 slots.
fn stage_rss(root: &Path, seen: (f64, usize), report: &mut Report) -> Result<()> {
    let (peak, outputs) = if seen.1 >= RSS_VARIATIONS as usize {
        seen
    } else {
        eprintln!("[pixel] the stage's RSS at {RSS_SIZE} with {RSS_VARIATIONS} variations ...");
        let dir = root.join("rss");
        std::fs::create_dir_all(&dir)?;
        let input = dir.join("in.mp4");
        make_video(&input, RSS_SECONDS, RSS_SIZE, true);
        let spec = DaemonSpec {
            max_parallel: Some(RSS_VARIATIONS as usize),
            config: "",
            stages: true,
        };
        let run = run_vidvard(&dir.join("run"), &[input], RSS_VARIATIONS, spec)?;
        run.stages.map_or((0.0, 0), |s| s.stage_peak)
    };
    ensure!(outputs > 0, "no vidvar-stage was seen");
    println!("\nvidvar-stage peak RSS: {peak:.1} MiB with {outputs} variations.");
    report.target(
        format!(
            "vidvar-stage RSS, {RSS_SIZE}, {RSS_VARIATIONS} variations <= {TARGET_STAGE_MIB} MiB"
        ),
        format!("{peak:.1} MiB ({outputs} variations)"),
        peak <= TARGET_STAGE_MIB && outputs >= RSS_VARIATIONS as usize,
    );
    Ok(())
}

/// vidvard once per `max_parallel` value and the loop once, per set.
fn sweep(root: &Path, sets: &[Inputs], values: &[usize]) -> Result<()> {
    let mut headers = vec!["clips".to_string(), "plain loop, 2 at a time".to_string()];
    headers.extend(values.iter().map(|v| format!("max_parallel {v}")));
    let mut table = Table::new(&headers.iter().map(String::as_str).collect::<Vec<_>>());
    for set in sets {
        let all = encodes(&set.files, set.variations);
        let dir = root.join("sweep");
        let plain = LoopSpec {
            parallel: LOOP_PARALLEL,
            extra: &[],
            nice: None,
        };
        let looped = logged(
            "plain loop",
            run_loop(&all, plain, &dir.join("loop"), None)?,
        );
        let mut row = vec![set.label.clone(), format!("{:.1} s", looped.wall)];
        for &v in values {
            let spec = DaemonSpec {
                max_parallel: Some(v),
                config: "",
                stages: false,
            };
            let run = logged(
                &format!("vidvard, max_parallel {v}"),
                run_vidvard(&dir.join("vidvard"), &set.files, set.variations, spec)?,
            );
            row.push(format!(
                "{:.1} s ({:.2}x)",
                run.wall,
                looped.wall / run.wall
            ));
        }
        table.row(row);
    }
    println!("\n## max_parallel sweep (one round; wall time, speed-up over the loop)\n");
    table.print();
    Ok(())
}

fn logged(what: &str, run: BatchRun) -> BatchRun {
    eprintln!(
        "[pixel]   {what}: wall {:.2} s, CPU {:.2} s, other load {:.2} cores {}",
        run.wall, run.cpu, run.other, run.note
    );
    run
}

fn listed(ratios: &[f64]) -> String {
    ratios
        .iter()
        .map(|r| format!("{r:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}
