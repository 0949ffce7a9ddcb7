//! vidvar: a local daemon that turns input videos into N *variations* each,
//! copies that look the same but carry small random effects, so that every
//! copy is a distinct file.
//!
//! # Layout
//!
//! - [`proto`]: wire types; [`proto::codec`] is the only code that knows
//!   bincode and framing. [`client`]: the client side of the protocol.
//! - [`queue`]: the durable job queue behind one trait, [`queue::Queue`],
//!   opened by [`queue::open`]; [`queue::sqlite`] keeps it in SQLite, on
//!   threads of its own (the only module that imports rusqlite),
//!   [`queue::postgres`] in PostgreSQL for several nodes, each in files of
//!   the same names by concern (`jobs`, `claims`, `settle`, `hooks`, `history`,
//!   `recovery`, `node`, `folders`, `rows`, `schema`, `store`, `error`).
//!   [`naming`]: the names of the files a variation makes. [`folder`]:
//!   the rules of watch folders (pure).
//! - [`effects`]: the seeded variation recipe (pure). [`pixel`]: the
//!   same effects applied to raw frames (FFmpeg's `rotate` and `eq`,
//!   vectorized), for the `vidvar-stage` binary. [`pipes`]: pipe sizes
//!   for the pipelines that binary runs in.
//! - [`ffmpeg`]: argv building, `-progress` parsing, ffprobe.
//! - [`engine`]: the request API ([`engine::requests`]), what runs next
//!   ([`engine::dispatch`]), one slot's work ([`engine::worker`]: probe,
//!   encode, verify, publish) and the FFmpeg processes
//!   ([`engine::supervisor`]); [`engine::admission`] checks submissions;
//!   [`engine::watch`] watches folders and takes their files as jobs.
//! - [`access`] judges permissions; [`access::vetted`] opens only the
//!   files vetted for a job.
//! - [`recovery`]: cleanup after an unclean stop.
//! - [`history`]: the record of variation runs and the counters that
//!   never go down (domain rules; the queue keeps them); [`rusage`]: CPU
//!   time of child processes at exit; [`metrics`]: their Prometheus text;
//!   [`exporter`]: that text on a socket of its own and in a textfile.
//! - [`server`]: accept loop and request dispatch; [`socket_file`]: a
//!   socket's file before bind(2) and its mode after.
//! - [`daemon`]: pidfile, socket, startup and orderly stop;
//!   [`readiness`] reports the outcome of a start, [`logging`] picks stderr
//!   or syslog.
//! - [`config`], [`paths`], [`process`]: settings, default locations,
//!   process identity from /proc.

pub mod access;
pub mod client;
pub mod config;
pub mod daemon;
pub mod effects;
pub mod engine;
pub mod escape;
pub mod exporter;
pub mod ffmpeg;
pub mod folder;
pub mod history;
pub mod job;
pub mod logging;
pub mod metrics;
pub mod naming;
pub mod paths;
pub mod pipes;
pub mod pixel;
pub mod process;
pub mod proto;
pub mod queue;
pub mod readiness;
pub mod recovery;
pub mod rusage;
pub mod server;
pub mod socket_file;
pub mod state_dir;
