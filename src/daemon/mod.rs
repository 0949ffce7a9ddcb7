//! The daemon's life: pidfile, directories, socket, startup recovery, the
//! serving loop and an orderly stop.
//!
//! [`run`] takes its stop signal as a future, so tests can stop a daemon
//! without signals; `main` passes SIGTERM/SIGINT. The pidfile is taken by
//! [`Pidfile::acquire`] in `main` before any runtime exists.
//!
//! This module owns the start and the stop ([`run`]) and the tasks that
//! export the metrics; what a start takes hold of has a module of its own,
//! whose names are re-exported here: `pidfile` (the pidfile and the state
//! directory's lock), `dirs` (the directories it creates or trusts),
//! `socket` (the control socket) and `error` ([`DaemonError`]).

mod dirs;
mod error;
mod pidfile;
mod socket;

pub use dirs::create_socket_dir;
pub use error::DaemonError;
pub use pidfile::{PIDFILE_MODE, Pidfile, StateLock};
pub use socket::refuse_live_socket;

use crate::config::{Config, Tunables};
use crate::engine::Engine;
use crate::recovery;
use crate::server;
use socket::listen;
use std::future::Future;
use std::io;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Serve the metrics on `listener` (bound at `metrics.socket`) and write
/// `metrics.textfile`, until `stop` fires; returns their tasks.
fn spawn_exporters(
    metrics: &crate::config::MetricsOutputs,
    listener: Option<tokio::net::UnixListener>,
    engine: &Arc<Engine>,
    stop: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    if let (Some(listener), Some(path)) = (listener, &metrics.socket) {
        log::info!("serving GET /metrics on {}", path.display());
        let serving =
            crate::exporter::serve(listener, path.clone(), Arc::clone(engine), stop.clone());
        tasks.push(tokio::spawn(serving));
    }
    if let Some(path) = &metrics.textfile {
        let writing =
            crate::exporter::write_textfile(path.clone(), Arc::clone(engine), stop.clone());
        tasks.push(tokio::spawn(writing));
    }
    tasks
}

/// Run the daemon until `shutdown` resolves, then stop in order: refuse new
/// submissions, stop FFmpeg (SIGTERM, SIGKILL after the grace period), mark
/// unfinished work interrupted, remove the socket.
///
/// `ready` is called once the database is open, recovery is done and the
/// socket listens. Settings received on `reloaded` (SIGHUP) are applied to
/// running work. Errors: any failure to start; once running, problems are
/// logged and do not end the daemon.
pub async fn run(
    config: Config,
    ready: impl FnOnce(),
    shutdown: impl Future<Output = ()>,
    mut reloaded: mpsc::UnboundedReceiver<Tunables>,
) -> Result<(), DaemonError> {
    // Before anything is created: a live daemon on this socket wins.
    refuse_live_socket(&config.socket, &config.state_dir)?;
    for change in crate::state_dir::prepare(&config.state_dir)? {
        log::info!("{change}");
    }
    // One daemon per database, whatever socket and pidfile each was given.
    let _state_lock = StateLock::acquire(&config.state_dir)?;
    let backend = config.queue();
    if let crate::queue::Backend::Sqlite { path } = &backend {
        // 0600 before SQLite makes it (and its -wal and -shm) 0644.
        crate::state_dir::create_database(path)?;
    }
    let queue = crate::queue::open(&backend).await?;
    // Before recovery, which may end jobs: those owe a hook too.
    queue
        .set_hooks(config.engine.hook.is_some())
        .await
        .map_err(DaemonError::Recovery)?;
    recovery::recover(&*queue)
        .await
        .map_err(DaemonError::Recovery)?;
    let listener = listen(&config.socket, config.socket_group, &config.state_dir)?;
    if config.system_mode && config.socket_group.is_none() {
        log::warn!(
            "system mode without a socket group (group {} does not exist): \
             only the daemon's user and root can connect",
            crate::config::DEFAULT_SOCKET_GROUP
        );
    }
    let socket = config.socket.clone();
    let metrics = config.metrics.clone();
    if let Some(path) = &metrics.textfile {
        dirs::create_textfile_dir(path)?;
    }
    let metrics_listener = match &metrics.socket {
        Some(path) => {
            // Its directory judged (or made) as the control socket's.
            dirs::create_metrics_socket_dir(path, metrics.socket_group)?;
            Some(crate::exporter::bind(path, metrics.socket_group)?)
        }
        None => None,
    };
    log::info!(
        "vidvard {} listening on {}, database {}, up to {} slot(s) of work",
        env!("CARGO_PKG_VERSION"),
        socket.display(),
        backend.describe(),
        config.tunables.max_parallel
    );
    let engine = Engine::new(config, queue);
    let dispatcher = tokio::spawn(Arc::clone(&engine).run());
    tokio::spawn(Arc::clone(&engine).enforce_retention());
    tokio::spawn(Arc::clone(&engine).hear_queue_changes());
    tokio::spawn(Arc::clone(&engine).run_hooks());
    tokio::spawn(Arc::clone(&engine).watch_folders());
    let stop_serving = CancellationToken::new();
    let server = tokio::spawn(server::serve(
        listener,
        Arc::clone(&engine),
        stop_serving.clone(),
    ));
    let exporters = spawn_exporters(&metrics, metrics_listener, &engine, &stop_serving);
    let reloader = {
        let engine = Arc::clone(&engine);
        tokio::spawn(async move {
            while let Some(tunables) = reloaded.recv().await {
                engine.apply_tunables(tunables);
            }
        })
    };
    ready();
    shutdown.await;
    reloader.abort();
    log::info!("shutting down");
    engine.stop();
    if let Err(err) = dispatcher.await {
        log::error!("dispatcher ended abnormally: {err}");
    }
    stop_serving.cancel();
    let _ = server.await;
    for exporter in exporters {
        let _ = exporter.await;
    }
    engine.notify_change();
    if let Err(err) = std::fs::remove_file(&socket)
        && err.kind() != io::ErrorKind::NotFound
    {
        log::warn!("cannot remove socket {}: {err}", socket.display());
    }
    log::info!("stopped");
    Ok(())
}
