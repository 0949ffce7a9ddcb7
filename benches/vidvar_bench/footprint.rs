//! Issue 7, part 3: the daemon's memory (VmRSS and its peak) with each
//! store size, read on [`crate::control`]'s daemons, and its target.

use crate::control::Level;
use crate::report::{Report, Table};
use crate::{TARGET_RSS_JOBS, TARGET_RSS_MIB};

pub fn print(levels: &[Level], report: &mut Report) {
    println!(
        "\n## Footprint\n\nvidvard's VmRSS (and VmHWM, its peak so far) from /proc/PID/status, \
         MiB: 200 ms after it answers; after the `list` requests; after the submits.\n"
    );
    let mut table = Table::new(&[
        "jobs stored",
        "idle RSS",
        "after list RSS",
        "HWM",
        "after submits RSS",
        "HWM",
        "database bytes",
    ]);
    let f = |r: Option<(f64, f64)>, hwm: bool| {
        r.map_or("-".to_string(), |(rss, peak)| {
            format!("{:.1}", if hwm { peak } else { rss })
        })
    };
    for l in levels {
        table.row(vec![
            l.jobs.to_string(),
            f(l.rss_idle, false),
            f(l.rss_after_list, false),
            f(l.rss_after_list, true),
            f(l.rss_end, false),
            f(l.rss_end, true),
            if l.db_bytes == 0 {
                "-".into()
            } else {
                l.db_bytes.to_string()
            },
        ]);
    }
    table.print();
    if let Some(l) = levels.iter().find(|l| l.jobs == 0)
        && let Some((rss, _)) = l.rss_idle
    {
        println!("- idle with an empty store: {rss:.1} MiB");
    }
    match levels.iter().find(|l| l.jobs == TARGET_RSS_JOBS) {
        Some(l) => {
            let (rss, _) = l.rss_after_list.unwrap_or((f64::NAN, f64::NAN));
            report.target(
                format!("RSS < {TARGET_RSS_MIB} MiB with {TARGET_RSS_JOBS} jobs (after a list)"),
                format!("{rss:.1} MiB"),
                rss < TARGET_RSS_MIB,
            );
        }
        None => report.skipped(format!(
            "RSS < {TARGET_RSS_MIB} MiB with {TARGET_RSS_JOBS} jobs (no store of that size)"
        )),
    }
}
