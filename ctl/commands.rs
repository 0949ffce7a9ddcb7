//! The commands of `vidvarctl`: each sends its request over a
//! [`Client`], then prints the answer as text ([`render`], [`mod@watch`]) or
//! as JSON (`--json`). What went wrong is a [`Failure`], which `main`
//! turns into a message and an exit status.

use crate::cli::{Args, Command};
use crate::{folders, out, render, watch};
use serde::Serialize;
use std::path::PathBuf;
use vidvar::client::{self, Client, ClientError};
use vidvar::proto::{
    JobDetail, JobId, JobPage, JobState, JobSummary, ListRequest, MAX_PAGE, Request, Response,
    SubmitRequest, WireError,
};

/// What a command ended with.
pub enum Failure {
    Client(ClientError),
    Daemon(WireError),
    Local(String),
    /// Refused before asking the daemon (exit status as for its refusals).
    Refused(String),
    /// The job ended without producing every variation.
    JobNotSucceeded,
    /// Ended by this signal (`top` on SIGTERM, SIGINT, SIGHUP), after
    /// cleaning up: exit status 128 + its number, as a shell reports a
    /// process the signal killed.
    Signalled(i32),
}

impl From<ClientError> for Failure {
    fn from(err: ClientError) -> Self {
        Failure::Client(err)
    }
}

pub fn print_json<T: Serialize>(value: &T) {
    let text = serde_json::to_string_pretty(value).expect("wire types serialize to JSON");
    out!("{text}\n");
}

pub fn expect<T>(
    response: Response,
    pick: impl FnOnce(Response) -> Option<T>,
) -> Result<T, Failure> {
    match response {
        Response::Error(err) => Err(Failure::Daemon(err)),
        other => {
            let text = format!("{other:?}");
            pick(other).ok_or_else(|| Failure::Local(format!("unexpected answer: {text}")))
        }
    }
}

/// The absolute form of `path`, as the daemon needs it: its directory
/// resolved (symlinks, `..`) when it exists, its own name kept as given, so
/// a symlinked input names its outputs. A missing path is made absolute
/// as it is, and the daemon says what is wrong with it.
pub fn absolute(path: &std::path::Path) -> Result<PathBuf, Failure> {
    if path.to_str().is_none() {
        return Err(Failure::Refused(format!(
            "{} is not valid UTF-8; vidvar handles UTF-8 paths only (rename it)",
            path.display()
        )));
    }
    let resolve =
        |e: std::io::Error| Failure::Local(format!("cannot resolve {}: {e}", path.display()));
    let full = std::path::absolute(path).map_err(resolve)?;
    let (Some(dir), Some(name)) = (full.parent(), full.file_name()) else {
        return Ok(full);
    };
    match std::fs::canonicalize(dir) {
        Ok(dir) => Ok(dir.join(name)),
        Err(_) => Ok(full),
    }
}

/// The submission of `files` as the daemon takes it: absolute paths, the
/// output directory defaulting to the current one. Built before
/// connecting, so that one over the size limits is never sent.
///
/// Errors: [`Failure::Refused`] for a non-UTF-8 path or a submission over
/// the limits ([`client::check_submission`]), naming the limit;
/// [`Failure::Local`] when a path cannot be made absolute.
fn submission(
    variations: u32,
    seed: Option<u64>,
    output_dir: Option<PathBuf>,
    files: &[PathBuf],
    priority: i32,
    labels: Vec<String>,
) -> Result<SubmitRequest, Failure> {
    let inputs = files
        .iter()
        .map(|f| absolute(f))
        .collect::<Result<Vec<_>, _>>()?;
    let output_dir = match output_dir {
        Some(dir) => absolute(&dir)?,
        None => std::env::current_dir()
            .map_err(|e| Failure::Local(format!("cannot read the current directory: {e}")))?,
    };
    let request = SubmitRequest {
        inputs,
        variations,
        seed,
        output_dir,
        priority,
        labels,
    };
    client::check_submission(&request).map_err(|e| Failure::Refused(e.to_string()))?;
    Ok(request)
}

async fn submit(
    client: &mut Client,
    json: bool,
    request: SubmitRequest,
    follow: bool,
) -> Result<(), Failure> {
    let request = Request::Submit(request);
    let job = expect(client.request(&request).await?, |r| match r {
        Response::Submitted { job } => Some(job),
        _ => None,
    })?;
    if follow {
        if !json {
            out!("job {job} submitted\n");
        }
        return watch(client, json, job).await;
    }
    if json {
        print_json(&serde_json::json!({ "job": job }));
    } else {
        out!("{job}\n");
    }
    Ok(())
}

/// Follow a job until it ends (see [`watch::View`]); exit status as for
/// `watch`: success only when every variation succeeded.
async fn watch(client: &mut Client, json: bool, job: JobId) -> Result<(), Failure> {
    client.send(&Request::Watch { job }).await?;
    let mut view = watch::View::new(json);
    loop {
        let detail: JobDetail = expect(client.next().await?, |r| match r {
            Response::Progress(d) => Some(d),
            _ => None,
        })?;
        if !detail.summary.state.is_final() {
            view.update(&detail);
            continue;
        }
        view.finish(&detail);
        return match detail.summary.state {
            JobState::Succeeded => Ok(()),
            _ => Err(Failure::JobNotSucceeded),
        };
    }
}

/// Send one request, then print its answer as JSON or as `render` makes it.
async fn show<T: Serialize>(
    client: &mut Client,
    json: bool,
    request: Request,
    pick: impl FnOnce(Response) -> Option<T>,
    render: impl FnOnce(&T) -> String,
) -> Result<(), Failure> {
    let answer = expect(client.request(&request).await?, pick)?;
    if json {
        print_json(&answer);
    } else {
        out!("{}", render(&answer));
    }
    Ok(())
}

fn job_detail(r: Response) -> Option<JobDetail> {
    match r {
        Response::Job(d) => Some(d),
        _ => None,
    }
}

fn pong(r: Response) -> Option<vidvar::proto::Pong> {
    match r {
        Response::Pong(p) => Some(p),
        _ => None,
    }
}

/// The jobs `filter` selects, at most `limit` (all for `None`), asked for
/// page by page; and whether the daemon is paused.
async fn list(
    c: &mut Client,
    mut filter: ListRequest,
    limit: Option<u32>,
) -> Result<(Vec<JobSummary>, bool), Failure> {
    let mut jobs = Vec::new();
    loop {
        let left = limit.map_or(u32::MAX, |l| l.saturating_sub(jobs.len() as u32));
        filter.limit = left.min(MAX_PAGE);
        if filter.limit == 0 {
            return Ok((jobs, false));
        }
        let page: JobPage = expect(
            client_request(c, Request::List(filter.clone())).await?,
            |r| match r {
                Response::Jobs(page) => Some(page),
                _ => None,
            },
        )?;
        filter.after = page.jobs.last().map_or(filter.after, |j| j.id);
        jobs.extend(page.jobs);
        if !page.more {
            return Ok((jobs, page.daemon_paused));
        }
    }
}

async fn client_request(c: &mut Client, request: Request) -> Result<Response, Failure> {
    Ok(c.request(&request).await?)
}

/// `wait`: every job of `jobs` (or with `all`, each queued or running job
/// of the caller's) followed to its end, one line (or with `--json` one
/// summary in an array) per job. Jobs are looked up first, so a missing
/// one fails at once (exit 4).
async fn wait(c: &mut Client, json: bool, jobs: Vec<JobId>, all: bool) -> Result<(), Failure> {
    let jobs = if all {
        let me = nix::unistd::getuid().as_raw();
        let every = ListRequest {
            state: None,
            label: None,
            after: 0,
            limit: MAX_PAGE,
        };
        let (listed, _) = list(c, every, None).await?;
        listed
            .into_iter()
            .filter(|j| j.owner_uid == me && !j.state.is_final())
            .map(|j| j.id)
            .collect()
    } else {
        for &job in &jobs {
            expect(
                client_request(c, Request::Status { job }).await?,
                job_detail,
            )?;
        }
        jobs
    };
    let mut ended = Vec::with_capacity(jobs.len());
    for job in jobs {
        c.send(&Request::Watch { job }).await?;
        let last = loop {
            let detail = expect(c.next().await?, |r| match r {
                Response::Progress(d) => Some(d),
                _ => None,
            })?;
            if detail.summary.state.is_final() {
                break detail.summary;
            }
        };
        if !json {
            out!("job {}: {}\n", last.id, last.state.as_str());
        }
        ended.push(last);
    }
    if json {
        print_json(&ended);
    }
    if ended.iter().all(|j| j.state == JobState::Succeeded) {
        Ok(())
    } else {
        Err(Failure::JobNotSucceeded)
    }
}

pub async fn run(args: Args) -> Result<(), Failure> {
    let Args {
        socket,
        service_user,
        json,
        command,
    } = args;
    match command {
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Args::command(), "vidvarctl", &mut script);
            out!("{}", String::from_utf8_lossy(&script));
            Ok(())
        }
        Command::Submit {
            job,
            seed,
            output_dir,
            watch: follow,
            files,
        } => {
            // Before connecting: a submission over the limits is never sent.
            let request = submission(
                job.variations,
                seed,
                output_dir,
                &files,
                job.priority,
                job.labels,
            )?;
            let mut client = connect(socket, &service_user).await?;
            submit(&mut client, json, request, follow).await
        }
        Command::Top => {
            let stream = connect(socket.clone(), &service_user).await?;
            let actions = async || connect(socket.clone(), &service_user).await;
            crate::top::top(stream, actions).await
        }
        command => serve(&mut connect(socket, &service_user).await?, json, command).await,
    }
}

/// Connect to vidvard at `socket` (the default one when `None`), trusting
/// root, the caller and `service_user`.
async fn connect(socket: Option<PathBuf>, service_user: &str) -> Result<Client, ClientError> {
    let socket = socket.unwrap_or_else(vidvar::paths::default_socket);
    let trusted = client::Trusted::new(service_user);
    let name = format!("vidvarctl {}", env!("CARGO_PKG_VERSION"));
    Client::connect(&socket, &trusted, &name).await
}

/// Run a command other than `submit` and `completions` over `c`.
async fn serve(c: &mut Client, json: bool, command: Command) -> Result<(), Failure> {
    match command {
        Command::Watch { job } => watch(c, json, job).await,
        Command::Status { job: Some(job) } => {
            show(c, json, Request::Status { job }, job_detail, render::detail).await
        }
        Command::Cancel { job } => {
            show(c, json, Request::Cancel { job }, job_detail, render::detail).await
        }
        Command::Retry { job } => {
            show(c, json, Request::Retry { job }, job_detail, render::detail).await
        }
        Command::Status { job: None } => {
            let every = ListRequest {
                state: None,
                label: None,
                after: 0,
                limit: MAX_PAGE,
            };
            let (jobs, paused) = list(c, every, None).await?;
            if json {
                print_json(&jobs);
            } else {
                if paused {
                    out!("{}", render::DAEMON_PAUSED);
                }
                out!("{}", render::summaries(&jobs));
            }
            Ok(())
        }
        Command::List {
            label,
            state,
            limit,
            after,
        } => {
            let filter = ListRequest {
                state,
                label,
                after,
                limit: MAX_PAGE,
            };
            let (jobs, _) = list(c, filter, limit).await?;
            if json {
                print_json(&jobs);
            } else {
                out!("{}", render::summaries(&jobs));
            }
            Ok(())
        }
        Command::Priority { job, priority } => {
            let request = Request::SetPriority { job, priority };
            show(c, json, request, job_detail, render::detail).await
        }
        Command::Pause {
            job: Some(job),
            stop,
        } => {
            let request = Request::Pause {
                job: Some(job),
                stop,
            };
            show(c, json, request, job_detail, render::detail).await
        }
        Command::Resume { job: Some(job) } => {
            let request = Request::Resume { job: Some(job) };
            show(c, json, request, job_detail, render::detail).await
        }
        Command::Pause { job: None, stop } => {
            let request = Request::Pause { job: None, stop };
            show(c, json, request, pong, render::pong).await
        }
        Command::Resume { job: None } => {
            show(c, json, Request::Resume { job: None }, pong, render::pong).await
        }
        Command::Wait { jobs, all } => wait(c, json, jobs, all).await,
        Command::Outputs { job } => {
            let pick = |r| match r {
                Response::Outputs(o) => Some(o),
                _ => None,
            };
            show(c, json, Request::Outputs { job }, pick, |o| {
                render::outputs(o)
            })
            .await
        }
        Command::Ping => show(c, json, Request::Ping, pong, render::pong).await,
        Command::Nodes => {
            let pick = |r| match r {
                Response::Nodes(n) => Some(n),
                _ => None,
            };
            show(c, json, Request::Nodes, pick, |n| render::nodes(n)).await
        }
        Command::Stats { since, label } => {
            let pick = |r| match r {
                Response::Stats(report) => Some(report),
                _ => None,
            };
            let request = Request::Stats {
                since_secs: since.as_secs(),
                label,
            };
            show(c, json, request, pick, render::stats).await
        }
        Command::Metrics => {
            let pick = |r| match r {
                Response::Metrics(text) => Some(serde_json::json!({ "metrics": text })),
                _ => None,
            };
            let text = |v: &serde_json::Value| v["metrics"].as_str().unwrap_or_default().to_owned();
            show(c, json, Request::Metrics, pick, text).await
        }
        Command::Prune { older_than } => {
            let older_than_secs = older_than.map_or(0, |d| d.as_secs());
            let pick = |r| match r {
                Response::Pruned { jobs } => Some(serde_json::json!({ "pruned": jobs })),
                _ => None,
            };
            let text = |v: &serde_json::Value| format!("{} job record(s) removed\n", v["pruned"]);
            show(c, json, Request::Prune { older_than_secs }, pick, text).await
        }
        Command::Folder { action } => folders::run(c, json, action).await,
        Command::Submit { .. } | Command::Completions { .. } | Command::Top => {
            unreachable!("run handles {command:?}")
        }
    }
}
