//! `vidvarctl folder ...`: the watch folder subcommands, their requests
//! and their text output (`--json` prints the daemon's answer as it is).
//! Paths from the daemon are [`escape`]d, one record per line.

use crate::cli::FolderCommand;
use crate::commands::{Failure, absolute, expect, print_json};
use crate::out;
use crate::render::{escape, time};
use vidvar::client::Client;
use vidvar::folder::{AfterAction, FailedAction, FolderSpec};
use vidvar::proto::{FolderInfo, Request, Response};

/// An action with its directory made absolute, as the daemon takes it.
fn absolute_after(action: AfterAction) -> Result<AfterAction, Failure> {
    Ok(match action {
        AfterAction::Move(dir) => AfterAction::Move(absolute(&dir)?),
        other => other,
    })
}

fn absolute_failed(action: FailedAction) -> Result<FailedAction, Failure> {
    Ok(match action {
        FailedAction::Move(dir) => FailedAction::Move(absolute(&dir)?),
        FailedAction::Keep => FailedAction::Keep,
    })
}

fn one(r: Response) -> Option<FolderInfo> {
    match r {
        Response::Folder(f) => Some(f),
        _ => None,
    }
}

/// Run a `folder` subcommand over `c`.
pub async fn run(c: &mut Client, json: bool, action: FolderCommand) -> Result<(), Failure> {
    let (request, show_one) = match action {
        FolderCommand::Add {
            dir,
            output_dir,
            job,
            settle,
            poll,
            poll_only,
            recursive,
            after,
            failed,
        } => {
            let spec = FolderSpec {
                dir: absolute(&dir)?,
                output_dir: absolute(&output_dir)?,
                variations: job.variations,
                priority: job.priority,
                labels: job.labels,
                settle_secs: settle,
                poll_secs: poll,
                poll_only,
                recursive,
                after: absolute_after(after)?,
                failed: absolute_failed(failed)?,
            };
            let answer = c.request(&Request::FolderAdd(spec)).await?;
            let folder = expect(answer, |r| match r {
                Response::FolderAdded { folder } => Some(folder),
                _ => None,
            })?;
            if json {
                print_json(&serde_json::json!({ "folder": folder }));
            } else {
                out!("{folder}\n");
            }
            return Ok(());
        }
        FolderCommand::List => {
            let answer = c.request(&Request::Folders).await?;
            let list = expect(answer, |r| match r {
                Response::Folders(list) => Some(list),
                _ => None,
            })?;
            if json {
                print_json(&list);
            } else {
                out!("{}", lines(&list));
            }
            return Ok(());
        }
        FolderCommand::Show { folder } => (Request::FolderShow { folder }, true),
        FolderCommand::Remove { folder } => (Request::FolderRemove { folder }, false),
        FolderCommand::Pause { folder } => (
            Request::FolderPause {
                folder,
                paused: true,
            },
            true,
        ),
        FolderCommand::Resume { folder } => (
            Request::FolderPause {
                folder,
                paused: false,
            },
            true,
        ),
    };
    let info = expect(c.request(&request).await?, one)?;
    if json {
        print_json(&info);
    } else if show_one {
        out!("{}", detail(&info));
    } else {
        out!("folder {} removed\n", info.id);
    }
    Ok(())
}

fn state(f: &FolderInfo) -> &'static str {
    if f.paused { "paused" } else { "watching" }
}

/// `folder list`: a header and one line per folder.
fn lines(list: &[FolderInfo]) -> String {
    let mut out = format!(
        "{:>5}  {:<8}  {:>6}  {}\n",
        "ID", "STATE", "TAKEN", "DIRECTORY -> OUTPUTS"
    );
    for f in list {
        out.push_str(&format!(
            "{:>5}  {:<8}  {:>6}  {} -> {}\n",
            f.id,
            state(f),
            f.taken,
            escape(&f.spec.dir),
            escape(&f.spec.output_dir)
        ));
    }
    out
}

/// `folder show`: the folder and its settings, one per line.
fn detail(f: &FolderInfo) -> String {
    let s = &f.spec;
    let labels: Vec<String> = s.labels.iter().map(escape).collect();
    let mut out = format!(
        "folder {}: {}, {} file(s) taken, owner uid {}, added {}\n",
        f.id,
        state(f),
        f.taken,
        f.owner_uid,
        time(f.created_at)
    );
    out += &format!(
        "  directory {}{}\n",
        escape(&s.dir),
        if s.recursive { " (recursive)" } else { "" }
    );
    out += &format!("  outputs   {}\n", escape(&s.output_dir));
    out += &format!(
        "  {} variation(s), priority {}, labels {}\n",
        s.variations,
        s.priority,
        if labels.is_empty() {
            "-".into()
        } else {
            labels.join(",")
        }
    );
    out += &format!(
        "  settle {} s, rescan every {} s{}\n",
        s.settle_secs,
        s.poll_secs,
        if s.poll_only { ", no inotify" } else { "" }
    );
    out += &format!(
        "  after {}, failed {}\n",
        escape(s.after.to_string()),
        escape(s.failed.to_string())
    );
    if let Some(node) = &f.node {
        out += &format!("  scanned by node {}\n", escape(node));
    }
    out
}
