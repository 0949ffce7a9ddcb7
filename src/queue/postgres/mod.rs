//! The shared [`Queue`]: one PostgreSQL database that any number of vidvard
//! nodes use at once, each running work in its own slots.
//!
//! Work is claimed with the `FOR UPDATE SKIP LOCKED` pattern in one short
//! transaction: the claim sets the variation's (or for a probe, the file's)
//! `node`, bumps its `attempt` and sets `lease_until`. No transaction or row
//! lock is held while FFmpeg runs. The node's heartbeat ([`Queue::heartbeat`])
//! renews its leases; every later write about claimed work names the node
//! and the attempt (fencing), so a node whose lease expired and was taken
//! over can neither record an outcome nor, since it confirms its lease right
//! before, publish a file. Work whose lease expired is claimed again by any
//! node, which first settles what the lost claim left (its temporary file
//! removed, or its published output adopted).
//!
//! The settle rules and the progress formula are [`crate::job`]'s, as in
//! the SQLite queue. Connections come from a pool (deadpool-postgres); a
//! connection attempt gives up after [`CONNECT_TIMEOUT`], so a request made
//! while the database is away fails within seconds.

mod listen;
mod pgpass;
mod schema;
pub mod tls;

use super::{
    Beat, FileRow, Full, HookRun, Interrupted, JobFilter, JobRow, Limits, NewJob, NodeRow, Outcome,
    OutputRow, Place, Queue, QueueError, Result, VariationWork, Work,
};
use crate::effects::Effects;
use crate::job::{
    self, Credentials, FileCounts, FileIdentity, FileState, FrameRate, JobId, JobState, Lease,
    Media, Quality, VariationCounts,
};
use crate::naming::temp_name;
use crate::process::ProcessIdentity;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Transaction,
};
use std::path::PathBuf;
use std::time::Duration;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Longest wait for a new connection to the database.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections a node keeps at most.
const POOL_SIZE: usize = 8;
/// Reason of work interrupted when its job was cancelled while its node
/// was gone.
const CANCELLED: &str = "cancelled";

/// Who this node is in the shared queue.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Unique among live nodes.
    pub name: String,
    /// `max_parallel`, shown by `vidvarctl nodes`.
    pub slots: u32,
    /// How long a claim stays this node's without a heartbeat.
    pub lease_timeout: Duration,
}

/// Why the shared queue cannot be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The URL does not parse; the message never repeats the URL, which may
    /// hold a password.
    #[error("invalid database URL: {0}")]
    Url(#[source] tokio_postgres::Error),
    #[error("database: {}", chain(.0))]
    Sql(#[from] tokio_postgres::Error),
    #[error("cannot connect to the database: {}", chain(.0))]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("cannot set up the database connections: {0}")]
    Build(#[from] deadpool_postgres::BuildError),
    #[error(
        "the database's schema is version {found}, newer than this vidvard understands \
         ({known}): upgrade vidvard; the database was left untouched"
    )]
    NewerSchema { found: i32, known: usize },
    #[error(
        "node name {name:?} is taken by a live node: pid {pid} on {host}, last heartbeat \
         {age:.0} s ago; give this node another --node-name"
    )]
    DuplicateNode {
        name: String,
        host: String,
        pid: i32,
        age: f64,
    },
    #[error("cannot read this process's identity: {0}")]
    Identity(#[source] std::io::Error),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("invalid stored {what}: {value:?}")]
    BadValue { what: &'static str, value: String },
}

/// `err` and its sources, `: `-separated: tokio-postgres says "error
/// performing TLS handshake" and keeps the reason (a certificate that does
/// not name the host, say) in its source.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

impl From<PgError> for QueueError {
    fn from(err: PgError) -> Self {
        QueueError::Backend(Box::new(err))
    }
}

impl From<tokio_postgres::Error> for QueueError {
    fn from(err: tokio_postgres::Error) -> Self {
        // A closed connection, a failed connect or a server shutting down
        // or starting (SQLSTATE classes 08 and 57P) is an outage, not a
        // fault of the request.
        let outage = err.code().map_or_else(
            || {
                err.is_closed()
                    || std::error::Error::source(&err).is_some_and(|s| s.is::<std::io::Error>())
            },
            |code| code.code().starts_with("08") || code.code().starts_with("57P"),
        );
        if outage {
            QueueError::Unavailable(Box::new(PgError::Sql(err)))
        } else {
            PgError::Sql(err).into()
        }
    }
}

impl From<deadpool_postgres::PoolError> for QueueError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        QueueError::Unavailable(Box::new(PgError::Pool(err)))
    }
}

/// The queue in a PostgreSQL database, as one node sees it.
pub struct PgQueue {
    pool: Pool,
    /// Bumped by every change a node announces ([`listen`]).
    changes: tokio::sync::watch::Receiver<u64>,
    node: String,
    /// The lease time in seconds, as SQL `make_interval` takes it.
    lease_secs: f64,
}

/// Where and how to connect to the database: tokio-postgres's settings and
/// the TLS connector that `sslmode` asks for.
#[derive(Clone)]
pub struct Database {
    pub config: tokio_postgres::Config,
    pub tls: MakeRustlsConnect,
}

impl std::fmt::Debug for Database {
    /// The settings' own `Debug`, which hides the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.config.fmt(f)
    }
}

/// Whether `url` itself holds a password (not the password file).
pub fn url_has_password(url: &str) -> bool {
    tls::take_tls(url)
        .ok()
        .and_then(|(url, _, _)| url.parse::<tokio_postgres::Config>().ok())
        .is_some_and(|c| c.get_password().is_some())
}

/// The connection settings in `url` (libpq's URL or key=value form; a
/// unix-socket directory as `host=`; `sslmode` and `sslrootcert` as in
/// [`tls`]), with the password from the password file (`PGPASSFILE`, else
/// `~/.pgpass`) when the URL has none.
///
/// Errors: [`PgError::Url`], [`PgError::Tls`].
pub fn parse_url(url: &str) -> std::result::Result<Database, PgError> {
    let (url, verify, root) = tls::take_tls(url)?;
    let tls = tls::connector(verify, root)?;
    let mut config: tokio_postgres::Config = url.parse().map_err(PgError::Url)?;
    if config.get_password().is_none()
        && let Some(password) = pgpass::lookup(&config)
    {
        config.password(password);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    Ok(Database { config, tls })
}

/// Where `config` connects, for logs: hosts, port and database, never the
/// user's password.
pub fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(dir) => dir.display().to_string(),
        })
        .collect();
    format!(
        "postgresql database {} on {}",
        config.get_dbname().unwrap_or("(default)"),
        hosts.join(",")
    )
}

impl PgQueue {
    /// Connect with `config`, create or upgrade the schema, and register
    /// this node.
    ///
    /// Errors: the database cannot be reached ([`PgError::Pool`]), its
    /// schema is newer than this binary's ([`PgError::NewerSchema`]), or
    /// another live node has this name ([`PgError::DuplicateNode`]).
    pub async fn connect(
        database: Database,
        node: &NodeConfig,
    ) -> std::result::Result<PgQueue, PgError> {
        let Database { mut config, tls } = database;
        config.application_name(format!("vidvard {}", node.name));
        // A node frozen or gone inside a transaction must not hold its
        // locks (and the cluster) for longer than a lease; a statement
        // waits for a lock at most that long too.
        let lease_ms = node.lease_timeout.as_millis();
        // The node's name, for the trigger that records owed hooks; the
        // server splits options at blanks, and a backslash escapes one.
        let node_setting: String = node
            .name
            .chars()
            .flat_map(|c| match c {
                ' ' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        let options = format!(
            "{} -c idle_in_transaction_session_timeout={lease_ms} -c lock_timeout={lease_ms} \
             -c vidvar.node={node_setting}",
            config.get_options().unwrap_or_default()
        );
        config.options(options.trim_start());
        let changes = listen::spawn(config.clone(), tls.clone());
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .build()?;
        let queue = PgQueue {
            pool,
            changes,
            node: node.name.clone(),
            lease_secs: node.lease_timeout.as_secs_f64(),
        };
        queue.migrate().await?;
        queue.register(node).await?;
        Ok(queue)
    }

    /// Bring the schema up to date under an advisory lock; a newer schema
    /// is refused and left as it is.
    async fn migrate(&self) -> std::result::Result<(), PgError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&schema::MIGRATION_LOCK],
        )
        .await?;
        // "already exists, skipping" notices are no news.
        tx.batch_execute("SET LOCAL client_min_messages = warning")
            .await?;
        tx.batch_execute(schema::VERSION_TABLE).await?;
        let found: i32 = tx
            .query_one("SELECT version FROM vidvar_schema", &[])
            .await?
            .get(0);
        let known = schema::STEPS.len();
        if found as usize > known {
            return Err(PgError::NewerSchema { found, known });
        }
        for step in &schema::STEPS[found as usize..] {
            tx.batch_execute(step).await?;
        }
        tx.execute("UPDATE vidvar_schema SET version = $1", &[&(known as i32)])
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Enter this node in `nodes`. A live node of the same name (heartbeat
    /// within the lease time, not stopped) refuses it, unless it is this
    /// node's own earlier process, dead, on this very machine.
    async fn register(&self, node: &NodeConfig) -> std::result::Result<(), PgError> {
        let me = ProcessIdentity::of(std::process::id() as i32).map_err(PgError::Identity)?;
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Two starts under one new name: the second waits here, then sees
        // the first.
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&(schema::MIGRATION_LOCK as i32), &node.name],
        )
        .await?;
        let existing = tx
            .query_opt(
                "SELECT host, pid, pid_start_time, boot_id, stopped,
                        extract(epoch FROM now() - heartbeat_at)::float8
                 FROM nodes WHERE name = $1 FOR UPDATE",
                &[&node.name],
            )
            .await?;
        if let Some(row) = existing {
            let (other_host, pid, start, boot, stopped, age): (
                String,
                i32,
                i64,
                String,
                bool,
                f64,
            ) = (
                row.get(0),
                row.get(1),
                row.get(2),
                row.get(3),
                row.get(4),
                row.get(5),
            );
            let earlier = ProcessIdentity {
                pid,
                start_time: start as u64,
                boot_id: boot,
            };
            // Only this machine can tell whether that process still runs.
            let dead_here =
                other_host == host && earlier.boot_id == me.boot_id && !earlier.is_alive();
            if !stopped && age < self.lease_secs && !dead_here {
                return Err(PgError::DuplicateNode {
                    name: node.name.clone(),
                    host: other_host,
                    pid,
                    age,
                });
            }
        }
        tx.execute(
            "INSERT INTO nodes (name, host, pid, pid_start_time, boot_id, slots)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (name) DO UPDATE SET host = $2, pid = $3, pid_start_time = $4,
                 boot_id = $5, slots = $6, started_at = now(), heartbeat_at = now(),
                 stopped = false",
            &[
                &node.name,
                &host,
                &me.pid,
                &(me.start_time as i64),
                &me.boot_id,
                &(node.slots as i32),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The next probe (a queued file, or one whose probe claim by another
    /// node expired), locked with its job (the claim updates the job: locks
    /// are taken job and file together, as a cancel takes them), with its
    /// turn key. This node's own expired
    /// claims are not taken: its heartbeat renews them when it can.
    async fn next_probe(&self, tx: &Transaction<'_>, after: JobId) -> Result<Option<(Turn, Row)>> {
        let row = opt(
            tx,
            "SELECT f.id, f.attempt, f.job_id, f.idx, f.path, f.real_path, f.dev, f.ino,
                        j.owner_uid, j.owner_gid, j.owner_groups, j.priority
                 FROM files f JOIN jobs j ON j.id = f.job_id
                 WHERE j.state IN ('queued', 'running') AND NOT j.paused
                   AND (f.state = 'queued'
                        OR (f.state = 'running' AND NOT f.probed AND f.lease_until < now()
                            AND f.node IS DISTINCT FROM $2 AND owner_silent(f.node, $3)))
                 ORDER BY j.priority DESC, (f.job_id <= $1), f.job_id, f.idx
                 LIMIT 1 FOR UPDATE OF f, j SKIP LOCKED",
            &[&after, &self.node, &self.lease_secs],
        )
        .await?;
        Ok(row.map(|r| (turn(&r, after, 11), r)))
    }

    /// The next variation (queued in a probed file, or one whose claim by
    /// another node expired), locked, with its turn key.
    async fn next_variation(
        &self,
        tx: &Transaction<'_>,
        after: JobId,
    ) -> Result<Option<(Turn, Row)>> {
        let row = opt(
            tx,
            "SELECT v.id, v.attempt, f.job_id, f.idx, f.id, v.idx, f.path, f.real_path,
                        f.dev, f.ino, j.output_real, j.output_dev, j.output_ino, f.duration_us,
                        v.rotation, v.brightness, v.contrast, v.saturation,
                        j.owner_uid, j.owner_gid, j.owner_groups,
                        v.state, v.node, v.temp_path, v.temp_dev, v.temp_ino,
                        v.pid, v.pid_start_time, v.boot_id,
                        f.frame_rate, f.interlaced, j.variations, f.video_us, j.priority
                 FROM variations v JOIN files f ON f.id = v.file_id
                 JOIN jobs j ON j.id = f.job_id
                 WHERE f.probed AND NOT j.paused
                   AND ((v.state = 'queued' AND f.state = 'running')
                        OR (v.state = 'running' AND v.lease_until < now()
                            AND v.node IS DISTINCT FROM $2 AND owner_silent(v.node, $3)))
                 ORDER BY j.priority DESC, (f.job_id <= $1), f.job_id, f.idx, v.idx
                 LIMIT 1 FOR UPDATE OF v SKIP LOCKED",
            &[&after, &self.node, &self.lease_secs],
        )
        .await?;
        Ok(row.map(|r| (turn(&r, after, 33), r)))
    }

    async fn claim_probe(&self, tx: &Transaction<'_>, r: &Row) -> Result<Work> {
        let (file_id, attempt, job_id): (i64, i64, i64) =
            (r.get(0), r.get::<_, i64>(1) + 1, r.get(2));
        exec(
            tx,
            "UPDATE files SET state = 'running', node = $2, attempt = $3,
                 lease_until = now() + make_interval(secs => $4)
             WHERE id = $1",
            &[&file_id, &self.node, &attempt, &self.lease_secs],
        )
        .await?;
        exec(
            tx,
            "UPDATE jobs SET state = 'running' WHERE id = $1 AND state = 'queued'",
            &[&job_id],
        )
        .await?;
        Ok(Work::Probe {
            job_id,
            lease: Lease {
                id: file_id,
                attempt,
            },
            path: PathBuf::from(r.get::<_, String>(4)),
            input: place(r, 5),
            owner: credentials(r, 8),
        })
    }

    async fn claim_variation(&self, tx: &Transaction<'_>, r: &Row) -> Result<Work> {
        let lease = Lease {
            id: r.get(0),
            attempt: r.get::<_, i64>(1) + 1,
        };
        let output_dir = place(r, 10);
        let input = PathBuf::from(r.get::<_, String>(6));
        let index = r.get::<_, i32>(5) as u32;
        let temp = output_dir.path.join(temp_name(&input, index, lease));
        let previous = (r.get::<_, String>(21) == "running").then(|| {
            Box::new(Interrupted {
                lease: Lease {
                    id: lease.id,
                    attempt: lease.attempt - 1,
                },
                temp_path: r.get::<_, Option<String>>(23).map(PathBuf::from),
                output_dir: output_dir.clone(),
                temp_identity: identity(r.get(24), r.get(25)),
                process: process(r, 26),
            })
        });
        if let Some(previous) = &previous
            && let Some(orphan) = &previous.process
        {
            // Only the node that ran it may judge and kill its process.
            let node: Option<String> = r.get(22);
            exec(
                tx,
                "INSERT INTO orphans (node, pid, pid_start_time, boot_id)
                 VALUES ($1, $2, $3, $4)",
                &[
                    &node.unwrap_or_default(),
                    &orphan.pid,
                    &(orphan.start_time as i64),
                    &orphan.boot_id,
                ],
            )
            .await?;
        }
        exec(
            tx,
            "UPDATE variations SET state = 'running', node = $2, attempt = $3,
                 lease_until = now() + make_interval(secs => $4), temp_path = $5,
                 temp_dev = NULL, temp_ino = NULL, pid = NULL, pid_start_time = NULL,
                 boot_id = NULL, error = NULL
             WHERE id = $1",
            &[
                &lease.id,
                &self.node,
                &lease.attempt,
                &self.lease_secs,
                &temp.to_string_lossy().into_owned(),
            ],
        )
        .await?;
        Ok(Work::Encode(VariationWork {
            job_id: r.get(2),
            file_id: r.get(4),
            lease,
            index,
            input,
            input_place: place(r, 7),
            output_dir,
            media: Media {
                duration_us: r.get::<_, Option<i64>>(13).map(|d| d as u64),
                video_us: r.get::<_, Option<i64>>(32).map(|d| d as u64),
                frame_rate: r
                    .get::<_, Option<String>>(29)
                    .as_deref()
                    .and_then(FrameRate::parse),
                interlaced: r.get(30),
            },
            variations: r.get::<_, i32>(31) as u32,
            effects: Effects {
                rotation: r.get(14),
                brightness: r.get(15),
                contrast: r.get(16),
                saturation: r.get(17),
            },
            owner: credentials(r, 18),
            previous,
        }))
    }

    /// Run `f` in one transaction on a pooled connection and commit.
    /// Set the flag `column` of this node's row (a name of ours, never a
    /// client's).
    async fn set_node_flag(&self, column: &str, on: bool) -> Result<()> {
        let client = self.pool.get().await?;
        let sql = format!("UPDATE nodes SET {column} = $2 WHERE name = $1");
        exec(&client, &sql, &[&self.node, &on]).await?;
        Ok(())
    }

    /// Set `column` of job `job` to `value` and tell every node (work may
    /// have become claimable). Returns the job's state, `None` for no such
    /// job.
    async fn set_job_column(
        &self,
        job: JobId,
        column: &'static str,
        value: &(dyn ToSql + Sync),
    ) -> Result<Option<JobState>> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let sql = format!("UPDATE jobs SET {column} = $2 WHERE id = $1 RETURNING state");
        let state = opt(&tx, &sql, &[&job, value]).await?;
        announce(&tx).await?;
        tx.commit().await?;
        state.map(|r| job_state(r.get(0))).transpose()
    }

    async fn in_tx<T>(
        &self,
        f: impl for<'a> FnOnce(&'a Transaction<'a>) -> futures_util::future::BoxFuture<'a, Result<T>>,
    ) -> Result<T> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let value = f(&tx).await?;
        tx.commit().await?;
        Ok(value)
    }
}

/// Where claimable work stands in the claim order: higher priority first,
/// then the jobs after the one served last, then by job and input.
type Turn = (std::cmp::Reverse<i32>, bool, i64, i32);

/// The [`Turn`] of a work row whose job id and input index are columns 2
/// and 3, and its job's priority column `priority`.
fn turn(r: &Row, after: JobId, priority: usize) -> Turn {
    let job: i64 = r.get(2);
    (
        std::cmp::Reverse(r.get(priority)),
        job <= after,
        job,
        r.get(3),
    )
}

/// Run `sql` on `c` as a statement prepared once per connection (deadpool's
/// statement cache): one round trip instead of two (parse, then execute).
async fn prepared<C: GenericClient>(c: &C, sql: &str) -> Result<tokio_postgres::Statement> {
    Ok(c.prepare_cached(sql).await?)
}

/// [`prepared`] `sql` executed; the rows it changed.
async fn exec<C: GenericClient>(c: &C, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
    Ok(c.execute(&prepared(c, sql).await?, params).await?)
}

/// [`prepared`] `sql`'s rows.
async fn rows<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>> {
    Ok(c.query(&prepared(c, sql).await?, params).await?)
}

/// [`prepared`] `sql`'s one row.
async fn one<C: GenericClient>(c: &C, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row> {
    Ok(c.query_one(&prepared(c, sql).await?, params).await?)
}

/// [`prepared`] `sql`'s row, if any.
async fn opt<C: GenericClient>(
    c: &C,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>> {
    Ok(c.query_opt(&prepared(c, sql).await?, params).await?)
}

/// Tell every node, when the transaction commits, that work became
/// claimable or a job changed state (a submission, a probe, a cancel, a
/// retry, released claims, a job's end). Claims and progress are not
/// announced: watchers see them within a second anyway, and each
/// notification serializes commits a little.
async fn announce(tx: &Transaction<'_>) -> Result<()> {
    tx.batch_execute(listen::NOTIFY).await?;
    Ok(())
}

/// A [`Place`] from three columns from `first` on: real path, device, inode.
fn place(r: &Row, first: usize) -> Place {
    Place {
        path: PathBuf::from(r.get::<_, String>(first)),
        identity: identity(r.get(first + 1), r.get(first + 2)),
    }
}

fn identity(dev: Option<i64>, ino: Option<i64>) -> Option<FileIdentity> {
    match (dev, ino) {
        (Some(dev), Some(ino)) => Some(FileIdentity {
            dev: dev as u64,
            ino: ino as u64,
        }),
        _ => None,
    }
}

/// A [`ProcessIdentity`] from three columns: pid, start time, boot id.
fn process(r: &Row, first: usize) -> Option<ProcessIdentity> {
    match (
        r.get::<_, Option<i32>>(first),
        r.get::<_, Option<i64>>(first + 1),
        r.get::<_, Option<String>>(first + 2),
    ) {
        (Some(pid), Some(start), Some(boot_id)) => Some(ProcessIdentity {
            pid,
            start_time: start as u64,
            boot_id,
        }),
        _ => None,
    }
}

/// [`Credentials`] from three columns: uid, gid, groups.
fn credentials(r: &Row, first: usize) -> Credentials {
    Credentials {
        uid: r.get::<_, i64>(first) as u32,
        gid: r.get::<_, i64>(first + 1) as u32,
        groups: r
            .get::<_, Vec<i64>>(first + 2)
            .into_iter()
            .map(|g| g as u32)
            .collect(),
    }
}

fn job_state(text: &str) -> Result<JobState> {
    [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Partial,
        JobState::Failed,
        JobState::Cancelled,
    ]
    .into_iter()
    .find(|s| s.as_str() == text)
    .ok_or_else(|| {
        PgError::BadValue {
            what: "job state",
            value: text.into(),
        }
        .into()
    })
}

fn file_state(text: &str) -> Result<FileState> {
    [
        FileState::Queued,
        FileState::Running,
        FileState::Succeeded,
        FileState::Failed,
        FileState::Cancelled,
    ]
    .into_iter()
    .find(|s| s.as_str() == text)
    .ok_or_else(|| {
        PgError::BadValue {
            what: "file state",
            value: text.into(),
        }
        .into()
    })
}

fn text(path: &std::path::Path) -> String {
    path.to_string_lossy().into_owned()
}

/// How many of a file's variations are in each state.
async fn variation_counts(tx: &Transaction<'_>, file_id: i64) -> Result<VariationCounts> {
    let r = one(
        tx,
        "SELECT COUNT(*),
                    COUNT(*) FILTER (WHERE state IN ('queued', 'running')),
                    COUNT(*) FILTER (WHERE state = 'succeeded'),
                    COUNT(*) FILTER (WHERE state = 'failed')
             FROM variations WHERE file_id = $1",
        &[&file_id],
    )
    .await?;
    let n = |i| r.get::<_, i64>(i).max(0) as u64;
    Ok(VariationCounts {
        total: n(0),
        open: n(1),
        succeeded: n(2),
        failed: n(3),
    })
}

async fn raise_progress(tx: &Transaction<'_>, file_id: i64, progress: f64) -> Result<()> {
    exec(
        tx,
        "UPDATE files SET progress = GREATEST(progress, $2) WHERE id = $1",
        &[&file_id, &progress],
    )
    .await?;
    Ok(())
}

/// Bring a file's progress up to its verified variations and settle it
/// ([`job::settled_file`]) once none is queued or running.
async fn settle_file(tx: &Transaction<'_>, file_id: i64) -> Result<()> {
    let counts = variation_counts(tx, file_id).await?;
    raise_progress(
        tx,
        file_id,
        job::file_progress(counts.total, counts.succeeded, 0.0),
    )
    .await?;
    let Some(state) = job::settled_file(counts) else {
        return Ok(());
    };
    exec(
        tx,
        "UPDATE files SET state = $2, lease_until = NULL,
             error = CASE WHEN $2 = 'failed' THEN COALESCE(error,
                 (SELECT v.error FROM variations v
                  WHERE v.file_id = $1 AND v.state = 'failed' ORDER BY v.idx LIMIT 1))
               ELSE NULL END
         WHERE id = $1",
        &[&file_id, &state.as_str()],
    )
    .await?;
    Ok(())
}

/// Settle a job ([`job::settled_job`]) once none of its files is open.
async fn settle_job(tx: &Transaction<'_>, job_id: JobId) -> Result<JobState> {
    let r = one(
        tx,
        "SELECT j.state, COUNT(f.id),
                    COUNT(f.id) FILTER (WHERE f.state IN ('queued', 'running')),
                    COUNT(f.id) FILTER (WHERE f.state = 'succeeded'),
                    (SELECT COUNT(*) FROM variations v JOIN files g ON g.id = v.file_id
                     WHERE g.job_id = j.id AND v.state = 'succeeded')
             FROM jobs j LEFT JOIN files f ON f.job_id = j.id WHERE j.id = $1 GROUP BY j.id",
        &[&job_id],
    )
    .await?;
    let state = job_state(r.get(0))?;
    let n = |i| r.get::<_, i64>(i).max(0) as u64;
    let counts = FileCounts {
        total: n(1),
        open: n(2),
        succeeded: n(3),
        outputs: n(4),
    };
    let Some(settled) = job::settled_job(state, counts) else {
        return Ok(state);
    };
    exec(
        tx,
        "UPDATE jobs SET state = $2, finished_at = extract(epoch FROM now())::bigint
         WHERE id = $1",
        &[&job_id, &settled.as_str()],
    )
    .await?;
    announce(tx).await?;
    Ok(settled)
}

/// Lock the row of the job that `find` (a query of one job id, given `id`)
/// names, until the transaction ends. Whatever settles a job's files or the
/// job takes this lock first: two variations ending at once then settle in
/// turn, the second seeing the first (READ COMMITTED reads what committed
/// before each statement), and locks are always taken job first.
async fn lock_job(tx: &Transaction<'_>, find: &str, id: i64) -> Result<()> {
    let sql = format!("SELECT id FROM jobs WHERE id = ({find}) FOR UPDATE");
    opt(tx, &sql, &[&id]).await?;
    Ok(())
}

/// A job's state, its row locked until the transaction ends; `None` for
/// no such job.
async fn locked_job_state(tx: &Transaction<'_>, job: JobId) -> Result<Option<JobState>> {
    opt(
        tx,
        "SELECT state FROM jobs WHERE id = $1 FOR UPDATE",
        &[&job],
    )
    .await?
    .map(|row| job_state(row.get(0)))
    .transpose()
}

async fn job_of_file(tx: &Transaction<'_>, file_id: i64) -> Result<JobId> {
    Ok(
        one(tx, "SELECT job_id FROM files WHERE id = $1", &[&file_id])
            .await?
            .get(0),
    )
}

const JOB_COLUMNS: &str = "j.id, j.state, j.variations, j.seed, j.output_dir, j.created_at,
    j.owner_uid, (SELECT COUNT(*) FROM files f WHERE f.job_id = j.id),
    (SELECT COALESCE(AVG(f.progress), 0) FROM files f WHERE f.job_id = j.id),
    j.priority, j.paused,
    ARRAY(SELECT l.label FROM labels l WHERE l.job_id = j.id ORDER BY l.label)";

fn job_row(r: &Row) -> Result<JobRow> {
    Ok(JobRow {
        id: r.get(0),
        state: job_state(r.get(1))?,
        variations: r.get::<_, i32>(2) as u32,
        seed: r.get::<_, i64>(3) as u64,
        output_dir: PathBuf::from(r.get::<_, String>(4)),
        created_at: r.get(5),
        owner_uid: r.get::<_, i64>(6) as u32,
        inputs: r.get::<_, i64>(7) as u32,
        progress: r.get(8),
        priority: r.get(9),
        paused: r.get(10),
        labels: r.get(11),
    })
}

#[async_trait::async_trait]
impl Queue for PgQueue {
    async fn submit(
        &self,
        job: NewJob,
        limits: Limits,
    ) -> Result<std::result::Result<JobId, Full>> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // One submission at a time, so that two cannot pass a limit together.
        exec(
            &tx,
            "SELECT pg_advisory_xact_lock($1)",
            &[&schema::SUBMIT_LOCK],
        )
        .await?;
        let pending: i64 = one(
            &tx,
            "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')",
            &[],
        )
        .await?
        .get(0);
        if pending as u64 >= limits.max_jobs {
            return Ok(Err(Full::Jobs {
                pending: pending as u64,
            }));
        }
        if let Some(max) = limits.max_owner_variations {
            let pending: i64 = one(
                &tx,
                "SELECT COUNT(*) FROM variations v
                     JOIN files f ON f.id = v.file_id JOIN jobs j ON j.id = f.job_id
                     WHERE j.state IN ('queued', 'running') AND j.owner_uid = $1
                       AND v.state IN ('queued', 'running')",
                &[&(job.owner.uid as i64)],
            )
            .await?
            .get(0);
            let asked = job.inputs.iter().map(|(_, _, e)| e.len() as u64).sum();
            if pending as u64 + asked > max {
                return Ok(Err(Full::Owner {
                    pending: pending as u64,
                    asked,
                }));
            }
        }
        let groups: Vec<i64> = job.owner.groups.iter().map(|&g| g as i64).collect();
        let job_id: i64 = one(
            &tx,
            "INSERT INTO jobs (state, variations, seed, output_dir, output_real, output_dev,
                                   output_ino, created_at, owner_uid, owner_gid, owner_groups,
                                   priority)
                 VALUES ('queued', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
            &[
                &(job.variations as i32),
                &(job.seed as i64),
                &text(&job.output_dir.0),
                &text(&job.output_dir.1.real),
                &(job.output_dir.1.identity.dev as i64),
                &(job.output_dir.1.identity.ino as i64),
                &job.created_at,
                &(job.owner.uid as i64),
                &(job.owner.gid as i64),
                &groups,
                &job.priority,
            ],
        )
        .await?
        .get(0);
        exec(
            &tx,
            "INSERT INTO labels (label, job_id)
             SELECT DISTINCT l, $2::bigint FROM unnest($1::text[]) l",
            &[&job.labels, &job_id],
        )
        .await?;

        for (idx, (path, vetted, effects)) in job.inputs.iter().enumerate() {
            let file_id: i64 = one(
                &tx,
                "INSERT INTO files (job_id, idx, path, real_path, dev, ino, state)
                 VALUES ($1, $2, $3, $4, $5, $6, 'queued') RETURNING id",
                &[
                    &job_id,
                    &(idx as i32),
                    &text(path),
                    &text(&vetted.real),
                    &(vetted.identity.dev as i64),
                    &(vetted.identity.ino as i64),
                ],
            )
            .await?
            .get(0);
            let (rotation, brightness, contrast, saturation): (
                Vec<f64>,
                Vec<f64>,
                Vec<f64>,
                Vec<f64>,
            ) = (
                effects.iter().map(|e| e.rotation).collect(),
                effects.iter().map(|e| e.brightness).collect(),
                effects.iter().map(|e| e.contrast).collect(),
                effects.iter().map(|e| e.saturation).collect(),
            );
            exec(
                &tx,
                "INSERT INTO variations
                     (file_id, idx, rotation, brightness, contrast, saturation, state)
                 SELECT $1, n::integer, r, b, c, s, 'queued'
                 FROM unnest($2::float8[], $3::float8[], $4::float8[], $5::float8[])
                      WITH ORDINALITY AS e(r, b, c, s, n)",
                &[&file_id, &rotation, &brightness, &contrast, &saturation],
            )
            .await?;
        }
        announce(&tx).await?;
        tx.commit().await?;
        Ok(Ok(job_id))
    }

    async fn job(&self, id: JobId) -> Result<Option<JobRow>> {
        let client = self.pool.get().await?;
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs j WHERE j.id = $1");
        opt(&client, &sql, &[&id])
            .await?
            .map(|r| job_row(&r))
            .transpose()
    }

    async fn jobs(&self, filter: JobFilter) -> Result<Vec<JobRow>> {
        let client = self.pool.get().await?;
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs j
             WHERE j.id > $1 AND ($2::bigint IS NULL OR j.owner_uid = $2)
               AND ($3::text IS NULL OR j.state = $3)
               AND ($4::text IS NULL
                    OR EXISTS (SELECT 1 FROM labels l WHERE l.job_id = j.id AND l.label = $4))
             ORDER BY j.id LIMIT $5"
        );
        let owner = filter.owner.map(i64::from);
        let state = filter.state.map(JobState::as_str);
        let limit = i64::from(filter.limit);
        rows(
            &client,
            &sql,
            &[&filter.after, &owner, &state, &filter.label, &limit],
        )
        .await?
        .iter()
        .map(job_row)
        .collect()
    }

    async fn files(&self, job: JobId) -> Result<Vec<FileRow>> {
        let client = self.pool.get().await?;
        let rows = rows(
            &client,
            "SELECT f.id, f.job_id, f.idx, f.path, f.state, f.duration_us, f.progress,
                        f.error,
                        (SELECT COUNT(*) FROM variations v
                         WHERE v.file_id = f.id AND v.state = 'succeeded'),
                        ARRAY(SELECT DISTINCT v.node FROM variations v
                              WHERE v.file_id = f.id AND v.node IS NOT NULL
                                AND v.state IN ('running', 'succeeded') ORDER BY 1)
                 FROM files f WHERE f.job_id = $1 ORDER BY f.idx",
            &[&job],
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(FileRow {
                    id: r.get(0),
                    job_id: r.get(1),
                    idx: r.get::<_, i32>(2) as u32,
                    path: PathBuf::from(r.get::<_, String>(3)),
                    state: file_state(r.get(4))?,
                    duration_us: r.get::<_, Option<i64>>(5).map(|d| d as u64),
                    progress: r.get(6),
                    error: r.get(7),
                    done_variations: r.get::<_, i64>(8) as u32,
                    nodes: r.get(9),
                })
            })
            .collect()
    }

    async fn outputs(&self, job: JobId) -> Result<Vec<OutputRow>> {
        let client = self.pool.get().await?;
        let rows = rows(
            &client,
            "SELECT v.output_path, v.size_bytes, f.path, v.idx,
                        v.rotation, v.brightness, v.contrast, v.saturation, v.node,
                        v.check_samples, v.ssim_mean, v.ssim_min, v.luma_diff
                 FROM variations v JOIN files f ON f.id = v.file_id
                 WHERE f.job_id = $1 AND v.state = 'succeeded'
                 ORDER BY f.idx, v.idx",
            &[&job],
        )
        .await?;
        Ok(rows
            .iter()
            .map(|r| OutputRow {
                path: PathBuf::from(r.get::<_, String>(0)),
                size: r.get::<_, i64>(1) as u64,
                input: PathBuf::from(r.get::<_, String>(2)),
                index: r.get::<_, i32>(3) as u32,
                effects: Effects {
                    rotation: r.get(4),
                    brightness: r.get(5),
                    contrast: r.get(6),
                    saturation: r.get(7),
                },
                node: r.get(8),
                quality: r.get::<_, Option<i32>>(9).map(|samples| Quality {
                    samples: samples as u32,
                    ssim_mean: r.get(10),
                    ssim_min: r.get(11),
                    luma_diff: r.get(12),
                }),
            })
            .collect())
    }

    async fn queue_depth(&self) -> Result<u64> {
        let client = self.pool.get().await?;
        let n: i64 = one(
            &client,
            "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')",
            &[],
        )
        .await?
        .get(0);
        Ok(n as u64)
    }

    async fn cancel(&self, job: JobId) -> Result<Option<JobState>> {
        self.in_tx(|tx| {
            Box::pin(async move {
                let Some(before) = locked_job_state(tx, job).await? else {
                    return Ok(None);
                };
                if before.is_final() {
                    return Ok(Some(before));
                }
                exec(
                    tx,
                    "UPDATE variations SET state = 'cancelled'
                     WHERE state = 'queued'
                       AND file_id IN (SELECT id FROM files WHERE job_id = $1)",
                    &[&job],
                )
                .await?;
                exec(
                    tx,
                    "UPDATE files SET state = 'cancelled' WHERE job_id = $1 AND state = 'queued'",
                    &[&job],
                )
                .await?;
                exec(
                    tx,
                    "UPDATE jobs SET state = 'cancelled',
                         finished_at = extract(epoch FROM now())::bigint
                     WHERE id = $1",
                    &[&job],
                )
                .await?;
                announce(tx).await?;
                let running = rows(
                    tx,
                    "SELECT id FROM files WHERE job_id = $1 AND state = 'running' ORDER BY id",
                    &[&job],
                )
                .await?;
                for r in running {
                    settle_file(tx, r.get(0)).await?;
                }
                Ok(Some(before))
            })
        })
        .await
    }

    async fn retry(&self, job: JobId) -> Result<Option<(JobState, u64)>> {
        self.in_tx(|tx| {
            Box::pin(async move {
                let Some(before) = locked_job_state(tx, job).await? else {
                    return Ok(None);
                };
                if !before.is_final() || before == JobState::Succeeded {
                    return Ok(Some((before, 0)));
                }
                let requeued = exec(
                    tx,
                    "UPDATE variations SET state = 'queued', error = NULL
                         WHERE state IN ('failed', 'cancelled')
                           AND file_id IN (SELECT id FROM files WHERE job_id = $1)",
                    &[&job],
                )
                .await?;
                let files = rows(
                    tx,
                    "SELECT DISTINCT f.id FROM files f JOIN variations v ON v.file_id = f.id
                         WHERE f.job_id = $1 AND v.state = 'queued'",
                    &[&job],
                )
                .await?;
                for r in files {
                    let file_id: i64 = r.get(0);
                    let counts = variation_counts(tx, file_id).await?;
                    let progress = job::file_progress(counts.total, counts.succeeded, 0.0);
                    exec(
                        tx,
                        "UPDATE files SET state = 'queued', probed = false, error = NULL,
                             progress = $2, node = NULL, lease_until = NULL
                         WHERE id = $1",
                        &[&file_id, &progress],
                    )
                    .await?;
                }
                exec(
                    tx,
                    "UPDATE jobs SET state = 'queued', finished_at = NULL WHERE id = $1",
                    &[&job],
                )
                .await?;
                announce(tx).await?;
                Ok(Some((before, requeued)))
            })
        })
        .await
    }

    async fn prune(&self, owner: Option<u32>, finished_before: i64) -> Result<u64> {
        let client = self.pool.get().await?;
        let owner = owner.map(i64::from);
        Ok(exec(
            &client,
            "DELETE FROM jobs
                 WHERE state IN ('succeeded', 'partial', 'failed', 'cancelled')
                   AND finished_at <= $1 AND ($2::bigint IS NULL OR owner_uid = $2)
                   AND NOT EXISTS (SELECT 1 FROM files f JOIN variations v ON v.file_id = f.id
                                   WHERE f.job_id = jobs.id AND v.state = 'running')",
            &[&finished_before, &owner],
        )
        .await?)
    }

    async fn claim(&self, after: JobId) -> Result<Option<Work>> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let probe = self.next_probe(&tx, after).await?;
        let variation = self.next_variation(&tx, after).await?;
        let work = match (probe, variation) {
            (Some((pk, p)), Some((vk, _))) if pk < vk => Some(self.claim_probe(&tx, &p).await?),
            (_, Some((_, v))) => Some(self.claim_variation(&tx, &v).await?),
            (Some((_, p)), None) => Some(self.claim_probe(&tx, &p).await?),
            (None, None) => None,
        };
        tx.commit().await?;
        Ok(work)
    }

    async fn finish_probe(&self, lease: Lease, media: Media) -> Result<bool> {
        let client = self.pool.get().await?;
        let duration = media.duration_us.map(|d| d as i64);
        let rate = media.frame_rate.map(|r| r.to_string());
        let video = media.video_us.map(|d| d as i64);
        let changed = exec(
            &client,
            "UPDATE files SET probed = true, duration_us = $4, frame_rate = $5,
                     interlaced = $6, video_us = $7, lease_until = NULL
                 WHERE id = $1 AND node = $2 AND attempt = $3 AND state = 'running'
                   AND NOT probed",
            &[
                &lease.id,
                &self.node,
                &lease.attempt,
                &duration,
                &rate,
                &media.interlaced,
                &video,
            ],
        )
        .await?;
        // Its variations can be claimed now, by any node.
        client.batch_execute(listen::NOTIFY).await?;
        Ok(changed == 1)
    }

    async fn fail_file(&self, lease: Lease, error: String) -> Result<Option<JobState>> {
        let node = self.node.clone();
        self.in_tx(move |tx| {
            Box::pin(async move {
                lock_job(tx, "SELECT job_id FROM files WHERE id = $1", lease.id).await?;
                let held = exec(
                    tx,
                    "UPDATE files SET state = 'failed', error = $4, lease_until = NULL
                         WHERE id = $1 AND node = $2 AND attempt = $3 AND state = 'running'
                           AND NOT probed",
                    &[&lease.id, &node, &lease.attempt, &error],
                )
                .await?;
                if held != 1 {
                    return Ok(None);
                }
                exec(
                    tx,
                    "UPDATE variations SET state = 'failed', error = $2
                     WHERE file_id = $1 AND state = 'queued'",
                    &[&lease.id, &error],
                )
                .await?;
                let job = job_of_file(tx, lease.id).await?;
                settle_job(tx, job).await.map(Some)
            })
        })
        .await
    }

    async fn set_temp(&self, lease: Lease, temp: FileIdentity) -> Result<()> {
        let client = self.pool.get().await?;
        exec(
            &client,
            "UPDATE variations SET temp_dev = $4, temp_ino = $5
                 WHERE id = $1 AND node = $2 AND attempt = $3 AND state = 'running'",
            &[
                &lease.id,
                &self.node,
                &lease.attempt,
                &(temp.dev as i64),
                &(temp.ino as i64),
            ],
        )
        .await?;
        Ok(())
    }

    async fn set_process(&self, lease: Lease, process: ProcessIdentity) -> Result<()> {
        let client = self.pool.get().await?;
        exec(
            &client,
            "UPDATE variations SET pid = $4, pid_start_time = $5, boot_id = $6
                 WHERE id = $1 AND node = $2 AND attempt = $3 AND state = 'running'",
            &[
                &lease.id,
                &self.node,
                &lease.attempt,
                &process.pid,
                &(process.start_time as i64),
                &process.boot_id,
            ],
        )
        .await?;
        Ok(())
    }

    async fn confirm(&self, lease: Lease) -> Result<bool> {
        let client = self.pool.get().await?;
        let held = exec(
            &client,
            "UPDATE variations SET lease_until = now() + make_interval(secs => $4)
                 WHERE id = $1 AND node = $2 AND attempt = $3 AND state = 'running'
                   AND temp_dev IS NOT NULL",
            &[&lease.id, &self.node, &lease.attempt, &self.lease_secs],
        )
        .await?;
        Ok(held == 1)
    }

    async fn heartbeat(&self, beat: Beat) -> Result<Vec<Lease>> {
        let Beat {
            variations: held,
            probes,
            progress,
            slots,
        } = beat;
        let (node, lease_secs) = (self.node.clone(), self.lease_secs);
        self.in_tx(move |tx| {
            Box::pin(async move {
                exec(
                    tx,
                    "UPDATE nodes SET heartbeat_at = now(), slots = $2 WHERE name = $1",
                    &[&node, &(slots as i32)],
                )
                .await?;
                let ids: Vec<i64> = held.iter().map(|l| l.id).collect();
                let attempts: Vec<i64> = held.iter().map(|l| l.attempt).collect();
                // Renew what is still ours; an expired lease not yet taken
                // over is ours again.
                exec(
                    tx,
                    "UPDATE variations v SET lease_until = now() + make_interval(secs => $2)
                     FROM unnest($3::bigint[], $4::bigint[]) AS h(id, attempt)
                     WHERE v.id = h.id AND v.attempt = h.attempt AND v.node = $1
                       AND v.state = 'running'",
                    &[&node, &lease_secs, &ids, &attempts],
                )
                .await?;
                let (files, file_attempts): (Vec<i64>, Vec<i64>) =
                    probes.iter().map(|l| (l.id, l.attempt)).unzip();
                exec(
                    tx,
                    "UPDATE files f SET lease_until = now() + make_interval(secs => $2)
                     FROM unnest($3::bigint[], $4::bigint[]) AS h(id, attempt)
                     WHERE f.id = h.id AND f.attempt = h.attempt AND f.node = $1
                       AND f.state = 'running' AND NOT f.probed",
                    &[&node, &lease_secs, &files, &file_attempts],
                )
                .await?;
                let stop = rows(
                    tx,
                    "SELECT h.id, h.attempt
                         FROM unnest($2::bigint[], $3::bigint[]) AS h(id, attempt)
                         LEFT JOIN variations v ON v.id = h.id
                         LEFT JOIN files f ON f.id = v.file_id
                         LEFT JOIN jobs j ON j.id = f.job_id
                         WHERE v.id IS NULL OR v.node IS DISTINCT FROM $1
                            OR v.attempt <> h.attempt OR v.state <> 'running'
                            OR j.state = 'cancelled'",
                    &[&node, &ids, &attempts],
                )
                .await?
                .iter()
                .map(|r| Lease {
                    id: r.get(0),
                    attempt: r.get(1),
                })
                .collect();
                // Progress is news, not a record: a file another
                // transaction holds is skipped this beat, never waited for.
                for (file_id, running) in progress {
                    let counts = variation_counts(tx, file_id).await?;
                    let percent = job::file_progress(counts.total, counts.succeeded, running);
                    exec(
                        tx,
                        "UPDATE files SET progress = GREATEST(progress, $2)
                         WHERE id = (SELECT id FROM files WHERE id = $1 FOR UPDATE SKIP LOCKED)",
                        &[&file_id, &percent],
                    )
                    .await?;
                }
                Ok(stop)
            })
        })
        .await
    }

    async fn finish_variation(&self, lease: Lease, outcome: Outcome) -> Result<Option<JobState>> {
        let node = self.node.clone();
        self.in_tx(move |tx| {
            Box::pin(async move {
                lock_job(
                    tx,
                    "SELECT f.job_id FROM variations v JOIN files f ON f.id = v.file_id
                     WHERE v.id = $1",
                    lease.id,
                )
                .await?;
                let fence = "WHERE id = $1 AND node = $2 AND attempt = $3 AND state = 'running'";
                let changed = match &outcome {
                    Outcome::Succeeded {
                        output,
                        size,
                        quality,
                    } => {
                        exec(
                            tx,
                            &format!(
                                "UPDATE variations SET state = 'succeeded', output_path = $4,
                                     size_bytes = $5, temp_path = NULL, pid = NULL,
                                     error = NULL, lease_until = NULL, check_samples = $6,
                                     ssim_mean = $7, ssim_min = $8, luma_diff = $9 {fence}"
                            ),
                            &[
                                &lease.id,
                                &node,
                                &lease.attempt,
                                &text(output),
                                &(*size as i64),
                                &quality.map(|q| q.samples as i32),
                                &quality.map(|q| q.ssim_mean),
                                &quality.map(|q| q.ssim_min),
                                &quality.map(|q| q.luma_diff),
                            ],
                        )
                        .await?
                    }
                    Outcome::Failed { error } => {
                        exec(
                            tx,
                            &format!(
                                "UPDATE variations SET state = 'failed', error = $4,
                                     temp_path = NULL, pid = NULL, lease_until = NULL {fence}"
                            ),
                            &[&lease.id, &node, &lease.attempt, error],
                        )
                        .await?
                    }
                    Outcome::Cancelled => {
                        exec(
                            tx,
                            &format!(
                                "UPDATE variations SET state = 'cancelled', temp_path = NULL,
                                     pid = NULL, lease_until = NULL {fence}"
                            ),
                            &[&lease.id, &node, &lease.attempt],
                        )
                        .await?
                    }
                    // The job is locked: its state cannot change meanwhile.
                    Outcome::Requeued => {
                        exec(
                            tx,
                            &format!(
                                "UPDATE variations SET temp_path = NULL, temp_dev = NULL,
                                     temp_ino = NULL, pid = NULL, lease_until = NULL,
                                     state = CASE WHEN (SELECT j.state FROM jobs j
                                                        JOIN files f ON f.job_id = j.id
                                                        WHERE f.id = variations.file_id)
                                                       IN ('queued', 'running')
                                             THEN 'queued' ELSE 'cancelled' END {fence}"
                            ),
                            &[&lease.id, &node, &lease.attempt],
                        )
                        .await?
                    }
                };
                if changed != 1 {
                    return Ok(None);
                }
                let file_id: i64 = one(
                    tx,
                    "SELECT file_id FROM variations WHERE id = $1",
                    &[&lease.id],
                )
                .await?
                .get(0);
                settle_file(tx, file_id).await?;
                let job = job_of_file(tx, file_id).await?;
                settle_job(tx, job).await.map(Some)
            })
        })
        .await
    }

    async fn interrupted(&self) -> Result<Vec<Interrupted>> {
        let client = self.pool.get().await?;
        let rows = rows(
            &client,
            "SELECT v.id, v.attempt, v.temp_path, v.temp_dev, v.temp_ino,
                        j.output_real, j.output_dev, j.output_ino,
                        v.pid, v.pid_start_time, v.boot_id
                 FROM variations v JOIN files f ON f.id = v.file_id
                 JOIN jobs j ON j.id = f.job_id
                 WHERE v.node = $1 AND v.state = 'running'",
            &[&self.node],
        )
        .await?;
        Ok(rows
            .iter()
            .map(|r| Interrupted {
                lease: Lease {
                    id: r.get(0),
                    attempt: r.get(1),
                },
                temp_path: r.get::<_, Option<String>>(2).map(PathBuf::from),
                temp_identity: identity(r.get(3), r.get(4)),
                output_dir: place(r, 5),
                process: process(r, 8),
            })
            .collect())
    }

    async fn orphaned_processes(&self) -> Result<Vec<ProcessIdentity>> {
        let client = self.pool.get().await?;
        let rows = rows(
            &client,
            "DELETE FROM orphans WHERE node = $1
                 RETURNING pid, pid_start_time, boot_id",
            &[&self.node],
        )
        .await?;
        Ok(rows.iter().filter_map(|r| process(r, 0)).collect())
    }

    /// Nothing to do on a shared queue: [`Queue::mark_interrupted`] queues
    /// this node's unfinished work again rather than failing it.
    async fn requeue_idle_jobs(&self) -> Result<Vec<JobId>> {
        Ok(Vec::new())
    }

    /// Release this node's claims: its running variations and probes are
    /// queued again for any node (cancelled, in a cancelled job).
    async fn mark_interrupted(&self) -> Result<Vec<JobId>> {
        let node = self.node.clone();
        self.in_tx(move |tx| {
            Box::pin(async move {
                rows(
                    tx,
                    "SELECT id FROM jobs WHERE id IN
                         (SELECT f.job_id FROM files f
                          LEFT JOIN variations v ON v.file_id = f.id
                          WHERE v.node = $1 AND v.state = 'running'
                             OR f.node = $1 AND f.state = 'running' AND NOT f.probed)
                     ORDER BY id FOR UPDATE",
                    &[&node],
                )
                .await?;
                let cancelled = rows(
                    tx,
                    "UPDATE variations v SET state = 'cancelled', error = $2,
                             temp_path = NULL, pid = NULL, lease_until = NULL
                         FROM files f, jobs j
                         WHERE f.id = v.file_id AND j.id = f.job_id AND j.state = 'cancelled'
                           AND v.node = $1 AND v.state = 'running'
                         RETURNING v.file_id",
                    &[&node, &CANCELLED],
                )
                .await?;
                for r in cancelled {
                    settle_file(tx, r.get(0)).await?;
                }
                let released = rows(
                    tx,
                    "UPDATE variations v SET state = 'queued', temp_path = NULL,
                             pid = NULL, lease_until = NULL
                         FROM files f
                         WHERE f.id = v.file_id AND v.node = $1 AND v.state = 'running'
                         RETURNING f.job_id",
                    &[&node],
                )
                .await?;
                let probes = rows(
                    tx,
                    "UPDATE files SET state = 'queued', lease_until = NULL
                         WHERE node = $1 AND state = 'running' AND NOT probed
                         RETURNING job_id",
                    &[&node],
                )
                .await?;
                let mut jobs: Vec<JobId> =
                    released.iter().chain(&probes).map(|r| r.get(0)).collect();
                jobs.sort_unstable();
                jobs.dedup();
                for &job in &jobs {
                    settle_job(tx, job).await?;
                }
                if !jobs.is_empty() {
                    announce(tx).await?;
                }
                Ok(jobs)
            })
        })
        .await
    }

    async fn nodes(&self) -> Result<Vec<NodeRow>> {
        let client = self.pool.get().await?;
        let rows = rows(
            &client,
            "SELECT n.name, n.host, n.slots, n.stopped,
                        extract(epoch FROM now() - n.heartbeat_at)::float8,
                        extract(epoch FROM n.heartbeat_at)::bigint,
                        (SELECT COUNT(*) FROM variations v
                         WHERE v.node = n.name AND v.state = 'running')
                 FROM nodes n ORDER BY n.name",
            &[],
        )
        .await?;
        Ok(rows
            .iter()
            .map(|r| NodeRow {
                name: r.get(0),
                host: r.get(1),
                slots: r.get::<_, i32>(2) as u32,
                up: !r.get::<_, bool>(3) && r.get::<_, f64>(4) < self.lease_secs,
                stopped: r.get(3),
                last_heartbeat: r.get(5),
                running: r.get::<_, i64>(6) as u32,
            })
            .collect())
    }

    fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.changes.clone())
    }

    async fn set_priority(&self, job: JobId, priority: i32) -> Result<Option<JobState>> {
        self.set_job_column(job, "priority", &priority).await
    }

    async fn set_job_paused(&self, job: JobId, paused: bool) -> Result<Option<JobState>> {
        self.set_job_column(job, "paused", &paused).await
    }

    async fn paused(&self) -> Result<bool> {
        let client = self.pool.get().await?;
        Ok(opt(
            &client,
            "SELECT paused FROM nodes WHERE name = $1",
            &[&self.node],
        )
        .await?
        .is_some_and(|r| r.get(0)))
    }

    async fn set_paused(&self, paused: bool) -> Result<()> {
        self.set_node_flag("paused", paused).await
    }

    async fn set_hooks(&self, on: bool) -> Result<()> {
        self.set_node_flag("hooks", on).await
    }

    async fn claim_hook(&self) -> Result<Option<HookRun>> {
        let client = self.pool.get().await?;
        let row = opt(
            &client,
            "WITH due AS (SELECT job_id FROM hooks WHERE state = 'due'
                          ORDER BY job_id LIMIT 1 FOR UPDATE SKIP LOCKED)
             UPDATE hooks h SET state = 'running', node = $1,
                    started_at = extract(epoch FROM now())::bigint
             FROM due, jobs j WHERE h.job_id = due.job_id AND j.id = h.job_id
             RETURNING h.job_id, h.started_at, j.owner_uid, j.owner_gid, j.owner_groups",
            &[&self.node],
        )
        .await?;
        Ok(row.map(|r| HookRun {
            job_id: r.get(0),
            started_at: r.get(1),
            owner: credentials(&r, 2),
            process: None,
        }))
    }

    async fn set_hook_process(&self, job: JobId, process: ProcessIdentity) -> Result<()> {
        let client = self.pool.get().await?;
        exec(
            &client,
            "UPDATE hooks SET pid = $3, pid_start_time = $4, boot_id = $5
             WHERE job_id = $1 AND node = $2 AND state = 'running'",
            &[
                &job,
                &self.node,
                &process.pid,
                &(process.start_time as i64),
                &process.boot_id,
            ],
        )
        .await?;
        Ok(())
    }

    async fn finish_hook(&self, job: JobId) -> Result<()> {
        let client = self.pool.get().await?;
        exec(
            &client,
            "DELETE FROM hooks WHERE job_id = $1 AND node = $2 AND state = 'running'",
            &[&job, &self.node],
        )
        .await?;
        Ok(())
    }

    async fn hooks_left_running(&self) -> Result<Vec<HookRun>> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        exec(
            &tx,
            "UPDATE hooks SET state = 'due', node = NULL, started_at = NULL
             WHERE state = 'running' AND node = $1 AND pid IS NULL",
            &[&self.node],
        )
        .await?;
        let runs = rows(
            &tx,
            "SELECT h.job_id, h.started_at, j.owner_uid, j.owner_gid, j.owner_groups,
                    h.pid, h.pid_start_time, h.boot_id
             FROM hooks h JOIN jobs j ON j.id = h.job_id
             WHERE h.state = 'running' AND h.node = $1 ORDER BY h.job_id",
            &[&self.node],
        )
        .await?
        .iter()
        .map(|r| HookRun {
            job_id: r.get(0),
            started_at: r.get(1),
            owner: credentials(r, 2),
            process: Some(ProcessIdentity {
                pid: r.get(5),
                start_time: r.get::<_, i64>(6) as u64,
                boot_id: r.get(7),
            }),
        })
        .collect();
        tx.commit().await?;
        Ok(runs)
    }

    /// Mark this node stopped: its name is free at once.
    async fn leave(&self) -> Result<()> {
        let client = self.pool.get().await?;
        exec(
            &client,
            "UPDATE nodes SET stopped = true WHERE name = $1",
            &[&self.node],
        )
        .await?;
        Ok(())
    }
}
