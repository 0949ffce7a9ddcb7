//! Changes made by any node, heard on one dedicated connection with
//! `LISTEN` (PostgreSQL manual, LISTEN and NOTIFY): every write that others
//! should see at once (a submission, an outcome, a cancel, progress) runs
//! `pg_notify` on [`CHANNEL`] in its transaction, delivered when it
//! commits. Each notification bumps a [`watch`] counter; `watch` streams and
//! the dispatch loop wake on it instead of polling. A lost connection is
//! opened again with growing pauses; meanwhile the callers' own periodic
//! checks still see every change, only later.

use futures_util::StreamExt;
use std::time::Duration;
use tokio::sync::watch;
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The notification channel.
pub const CHANNEL: &str = "vidvar_changes";
/// The statement that tells every node something changed.
pub const NOTIFY: &str = "SELECT pg_notify('vidvar_changes', '')";

/// Longest pause between two attempts to listen again.
const MAX_PAUSE: Duration = Duration::from_secs(10);

/// Listen on [`CHANNEL`] with `config` until every receiver of the
/// returned counter is gone.
pub fn spawn(config: tokio_postgres::Config, tls: MakeRustlsConnect) -> watch::Receiver<u64> {
    let (changed, receiver) = watch::channel(0u64);
    tokio::spawn(async move {
        let mut pause = Duration::from_millis(500);
        while !changed.is_closed() {
            match listen(&config, &tls, &changed).await {
                Ok(()) => pause = Duration::from_millis(500),
                Err(err) => log::warn!(
                    "cannot listen for other nodes' changes: {}",
                    super::error::PgError::Sql(err)
                ),
            }
            // Whatever happened while not listening: look again.
            changed.send_modify(|n| *n = n.wrapping_add(1));
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
    });
    receiver
}

/// One listening connection, until it ends.
async fn listen(
    config: &tokio_postgres::Config,
    tls: &MakeRustlsConnect,
    changed: &watch::Sender<u64>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tls.clone()).await?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let statement = format!("LISTEN {CHANNEL}");
    let listening = client.batch_execute(&statement);
    tokio::pin!(listening);
    let mut listened = false;
    loop {
        tokio::select! {
            done = &mut listening, if !listened => {
                done?;
                listened = true;
                log::debug!("listening for other nodes' changes");
            }
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(_))) => {
                    changed.send_modify(|n| *n = n.wrapping_add(1));
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(err),
                None => return Ok(()),
            },
            () = changed.closed() => return Ok(()),
        }
    }
}
