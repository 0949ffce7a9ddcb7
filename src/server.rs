//! The socket side: accept loop, handshake, and one `match` from
//! [`Request`] to [`Response`].
//!
//! The server never sees bytes (framing is [`crate::proto::codec`]) and never
//! touches the store or processes directly (that is the [`Engine`]).
//! A connection that sends a malformed frame, a wrong protocol version or
//! nothing at all within [`HANDSHAKE_TIMEOUT`] is dropped with a logged
//! reason, and one silent between requests for the `client_idle_timeout`
//! in force ([`crate::config::Tunables`]) is closed; other connections
//! carry on. Each connection runs on its own
//! task, at most [`MAX_CONNECTIONS`] at once, and a client that stops
//! reading is dropped after [`SEND_TIMEOUT`], so no client blocks another.
//! What a connection's task logs draws on its user's
//! [`LogBudget`] ([`crate::logging::as_client`]), and a client's own words
//! (its name) are capped before they are logged
//! ([`crate::escape::logged`]).

use crate::engine::{ApiError, Engine};
use crate::job::Credentials;
use crate::logging::LogBudget;
use crate::proto::codec::{CodecError, Connection};
use crate::proto::{
    ErrorKind, HandshakeReply, Hello, JobId, PROTOCOL_VERSION, Request, Response, Welcome,
    WireError,
};
use interprocess::local_socket::tokio::{Listener, Stream, prelude::*};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Time a new connection has to send its [`Hello`].
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a client has to take one frame off the socket; a `watch` consumer
/// that stops reading is dropped after it.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once; further ones are closed at once.
pub const MAX_CONNECTIONS: usize = 512;
/// Connections one user may hold at once, so that one user cannot take
/// them all (with `watch` streams, say).
pub const MAX_CONNECTIONS_PER_USER: usize = 64;

/// Open connections per uid; a [`UserSlot`] gives its place back on drop.
#[derive(Clone, Default)]
struct PerUser(Arc<std::sync::Mutex<std::collections::HashMap<u32, usize>>>);

/// The log budget of each uid that has connected, shared by all its
/// connections (so that a loop of new connections draws on one budget).
#[derive(Default)]
struct Budgets(std::sync::Mutex<std::collections::HashMap<u32, Arc<LogBudget>>>);

impl Budgets {
    fn of(&self, uid: u32) -> Arc<LogBudget> {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(all.entry(uid).or_default())
    }
}

struct UserSlot {
    users: PerUser,
    uid: u32,
}

impl PerUser {
    fn take(&self, uid: u32) -> Option<UserSlot> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(uid).or_default();
        if *count >= MAX_CONNECTIONS_PER_USER {
            return None;
        }
        *count += 1;
        Some(UserSlot {
            users: self.clone(),
            uid,
        })
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut open = self.users.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.uid) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.uid);
            }
        }
    }
}
/// Shortest interval between two progress frames of one `watch`.
pub const WATCH_MIN_INTERVAL: Duration = Duration::from_millis(250);
/// Longest interval between two checks of a watched job: with the
/// heartbeat, changes made by other nodes of a shared queue (which wake no
/// one here) show within about a second.
pub const WATCH_MAX_INTERVAL: Duration = Duration::from_secs(1);

/// Accept connections until `stop` fires; each is served on its own task,
/// as the peer named by SO_PEERCRED.
pub async fn serve(listener: Listener, scheduler: Arc<Engine>, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let users = PerUser::default();
    let budgets = Budgets::default();
    let mut warned = None;
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(stream) => stream,
                Err(err) => {
                    log::warn!("accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stop.cancelled() => return,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            refuse(
                stream,
                &mut warned,
                format!("{MAX_CONNECTIONS} connections are open"),
            );
            continue;
        };
        let peer = match stream.peer_creds() {
            Ok(creds) => match (creds.euid(), creds.egid()) {
                (Some(uid), Some(gid)) => crate::access::peer_credentials(uid, gid, creds.pid()),
                _ => {
                    log::warn!("connection refused: no peer credentials");
                    continue;
                }
            },
            Err(err) => {
                log::warn!("connection refused: cannot read peer credentials: {err}");
                continue;
            }
        };
        let Some(user_slot) = users.take(peer.uid) else {
            let reason = format!(
                "uid {} has {MAX_CONNECTIONS_PER_USER} connections open",
                peer.uid
            );
            refuse(stream, &mut warned, reason);
            continue;
        };
        let scheduler = Arc::clone(&scheduler);
        let budget = budgets.of(peer.uid);
        tokio::spawn(crate::logging::as_client(budget, async move {
            let _user_slot = user_slot;
            let uid = peer.uid;
            if let Err(reason) = handle(Connection::daemon_side(stream), &scheduler, &peer).await {
                log::info!("connection of uid {uid} dropped: {reason}");
            }
            drop(slot);
        }));
    }
}

/// How often at most a refused connection is logged as a warning.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Turn a connection away with a "busy" handshake answer, on a task of its
/// own so a client that does not read cannot stall the accept loop. Logged
/// as a warning at most once per [`REFUSAL_LOG_INTERVAL`], so a flood of
/// connections cannot flood the log.
fn refuse(stream: Stream, warned: &mut Option<Instant>, reason: String) {
    if warned.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_INTERVAL) {
        log::warn!("connection refused: {reason} (further refusals logged at debug level)");
        *warned = Some(Instant::now());
    } else {
        log::debug!("connection refused: {reason}");
    }
    tokio::spawn(async move {
        let mut conn = Connection::daemon_side(stream);
        let busy = HandshakeReply::Refused(WireError {
            kind: ErrorKind::Busy,
            message: format!("vidvard is busy: {reason}; try again later"),
        });
        let _ = tokio::time::timeout(SEND_TIMEOUT, conn.send(&busy)).await;
    });
}

/// Serve one connection of `peer` until the client closes it.
///
/// Errors: the reason the connection was dropped (for the log).
pub async fn handle<S: AsyncRead + AsyncWrite + Unpin>(
    mut conn: Connection<S>,
    scheduler: &Engine,
    peer: &Credentials,
) -> Result<(), CodecError> {
    let hello: Hello = match tokio::time::timeout(HANDSHAKE_TIMEOUT, conn.recv()).await {
        Ok(hello) => hello?,
        Err(_) => {
            log::info!("connection dropped: no handshake within {HANDSHAKE_TIMEOUT:?}");
            return Ok(());
        }
    };
    if hello.protocol != PROTOCOL_VERSION {
        let message = format!(
            "protocol version mismatch: client {} speaks {}, vidvard {} speaks {}",
            crate::escape::logged(&hello.client),
            hello.protocol,
            env!("CARGO_PKG_VERSION"),
            PROTOCOL_VERSION
        );
        log::info!("{message}");
        conn.send(&HandshakeReply::Refused(WireError {
            kind: ErrorKind::VersionMismatch,
            message,
        }))
        .await?;
        return Ok(());
    }
    conn.send(&HandshakeReply::Welcome(Welcome {
        protocol: PROTOCOL_VERSION,
        daemon_version: env!("CARGO_PKG_VERSION").into(),
    }))
    .await?;
    loop {
        let idle = scheduler.tunables().client_idle_timeout;
        let request: Request = match tokio::time::timeout(idle, conn.recv()).await {
            Err(_) => return Ok(()),
            Ok(Ok(request)) => request,
            Ok(Err(CodecError::Closed)) => return Ok(()),
            Ok(Err(err)) => return Err(err),
        };
        match request {
            Request::Watch { job } => watch(&mut conn, scheduler, peer, job).await?,
            Request::Top => return top(&mut conn, scheduler, peer).await,
            other => {
                let response = respond(scheduler, peer, other).await;
                send(&mut conn, &response).await?;
            }
        }
    }
}

/// Send one frame, giving up after [`SEND_TIMEOUT`]. An answer too large
/// for a frame is replaced by an error the client can read.
async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    response: &Response,
) -> Result<(), CodecError> {
    let sent = async {
        match conn.send(response).await {
            Err(CodecError::FrameTooLarge(max)) => {
                let error = WireError {
                    kind: ErrorKind::InvalidRequest,
                    message: format!(
                        "the answer is larger than {} MiB; prune old jobs or ask for one job",
                        max >> 20
                    ),
                };
                conn.send(&Response::Error(error)).await
            }
            other => other,
        }
    };
    match tokio::time::timeout(SEND_TIMEOUT, sent).await {
        Ok(result) => result,
        Err(_) => Err(CodecError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "client stopped reading",
        ))),
    }
}

async fn respond(scheduler: &Engine, peer: &Credentials, request: Request) -> Response {
    let result = match request {
        Request::Submit(submit) => scheduler
            .submit(peer, submit)
            .await
            .map(|job| Response::Submitted { job }),
        Request::Status { job } => scheduler.detail(peer, job).await.map(Response::Job),
        Request::List(list) => scheduler.list(peer, list).await.map(Response::Jobs),
        Request::Pause { job: None, stop } => scheduler
            .pause_daemon(peer, true, stop)
            .await
            .map(Response::Pong),
        Request::Resume { job: None } => scheduler
            .pause_daemon(peer, false, false)
            .await
            .map(Response::Pong),
        Request::Pause {
            job: Some(job),
            stop,
        } => scheduler
            .pause_job(peer, job, true, stop)
            .await
            .map(Response::Job),
        Request::Resume { job: Some(job) } => scheduler
            .pause_job(peer, job, false, false)
            .await
            .map(Response::Job),
        Request::SetPriority { job, priority } => scheduler
            .set_priority(peer, job, priority)
            .await
            .map(Response::Job),
        Request::Outputs { job } => scheduler.outputs(peer, job).await.map(Response::Outputs),
        Request::Cancel { job } => scheduler.cancel(peer, job).await.map(Response::Job),
        Request::Retry { job } => scheduler.retry(peer, job).await.map(Response::Job),
        Request::Prune { older_than_secs } => scheduler
            .prune(peer, older_than_secs)
            .await
            .map(|jobs| Response::Pruned { jobs }),
        Request::Ping => scheduler.pong().await.map(Response::Pong),
        Request::Nodes => scheduler.nodes().await.map(Response::Nodes),
        Request::FolderAdd(spec) => scheduler
            .add_folder(peer, spec)
            .await
            .map(|folder| Response::FolderAdded { folder }),
        Request::Folders => scheduler.folders(peer).await.map(Response::Folders),
        Request::FolderShow { folder } => {
            scheduler.folder(peer, folder).await.map(Response::Folder)
        }
        Request::FolderRemove { folder } => scheduler
            .remove_folder(peer, folder)
            .await
            .map(Response::Folder),
        Request::FolderPause { folder, paused } => scheduler
            .pause_folder(peer, folder, paused)
            .await
            .map(Response::Folder),
        Request::Stats { since_secs, label } => scheduler
            .stats(peer, since_secs, label)
            .await
            .map(Response::Stats),
        Request::Metrics => scheduler
            .metrics()
            .await
            .map(|snapshot| Response::Metrics(crate::metrics::render(&snapshot))),
        Request::Watch { .. } => unreachable!("watch streams are served by watch()"),
        Request::Top => unreachable!("top streams are served by top()"),
    };
    result.unwrap_or_else(|err: ApiError| Response::Error(err.to_wire()))
}

/// Push [`Response::Top`] frames until the client goes: one now, then one
/// whenever something changes or [`WATCH_MAX_INTERVAL`] passed, never two
/// within [`WATCH_MIN_INTERVAL`] (at most 4 a second).
async fn top<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    scheduler: &Engine,
    peer: &Credentials,
) -> Result<(), CodecError> {
    let mut changes = scheduler.subscribe();
    loop {
        changes.mark_unchanged();
        let next = tokio::time::Instant::now() + WATCH_MIN_INTERVAL;
        let frame = match scheduler.top(peer).await {
            Ok(view) => Response::Top(Box::new(view)),
            Err(err) => Response::Error(err.to_wire()),
        };
        if send(conn, &frame).await.is_err() {
            return Ok(()); // the client closed: top has quit
        }
        let _ = tokio::time::timeout(WATCH_MAX_INTERVAL, changes.changed()).await;
        tokio::time::sleep_until(next).await;
    }
}

/// Push [`Response::Progress`] frames whenever the job changes until it is
/// final; the last frame is final. A new job state (its end included) goes
/// out at once, progress alone at most once per [`WATCH_MIN_INTERVAL`].
async fn watch<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    scheduler: &Engine,
    peer: &Credentials,
    job: JobId,
) -> Result<(), CodecError> {
    let mut changes = scheduler.subscribe();
    let mut last: Option<crate::proto::JobDetail> = None;
    let mut next_progress = tokio::time::Instant::now();
    loop {
        changes.mark_unchanged();
        let detail = match scheduler.detail(peer, job).await {
            Ok(detail) => detail,
            Err(err) => return send(conn, &Response::Error(err.to_wire())).await,
        };
        let done = detail.summary.state.is_final();
        if last.as_ref() != Some(&detail) {
            let new_state = last.as_ref().map(|l| l.summary.state) != Some(detail.summary.state);
            if !new_state && tokio::time::Instant::now() < next_progress {
                // Progress only, and too soon: look again when it is due,
                // or sooner if the job changes (it may have ended).
                tokio::select! {
                    () = tokio::time::sleep_until(next_progress) => {}
                    changed = changes.changed() => if changed.is_err() {
                        tokio::time::sleep_until(next_progress).await;
                    },
                }
                continue;
            }
            send(conn, &Response::Progress(detail.clone())).await?;
            last = Some(detail);
            next_progress = tokio::time::Instant::now() + WATCH_MIN_INTERVAL;
        }
        if done {
            return Ok(());
        }
        let _ = tokio::time::timeout(WATCH_MAX_INTERVAL, changes.changed()).await;
    }
}
