//! vidvar: a local daemon that turns input videos into N *variations* each,
//! copies that look the same but carry small random effects, so that every
//! copy is a distinct file.
//!
//! # Layout
//!
//! - [`proto`]: wire types; [`proto::codec`] is the only code that knows
//!   bincode and framing. [`client`]: the client side of the protocol.
//! - [`queue`]: the durable job queue behind one trait, [`queue::Queue`];
//!   [`queue::sqlite`] keeps it in SQLite, on threads of its own (the only
//!   module that imports rusqlite). [`naming`]: the names of the files a
//!   variation makes.
//! - [`effects`]: the seeded variation recipe (pure).
//! - [`ffmpeg`]: argv building, `-progress` parsing, ffprobe.
//! - [`supervisor`]: owns FFmpeg child processes.
//! - [`scheduler`]: what runs next, live progress, the job API;
//!   [`admission`] checks submissions, [`access`] judges permissions and
//!   [`access::vetted`] opens only the files vetted for a job.
//! - [`worker`]: one slot's work: probe, encode, verify, publish.
//! - [`recovery`]: cleanup after an unclean stop.
//! - [`server`]: accept loop and request dispatch.
//! - [`daemon`]: pidfile, socket, startup and orderly stop;
//!   [`readiness`] reports the outcome of a start, [`logging`] picks stderr
//!   or syslog.
//! - [`config`], [`paths`], [`process`]: settings, default locations,
//!   process identity from /proc.

pub mod access;
pub mod admission;
pub mod client;
pub mod config;
pub mod daemon;
pub mod effects;
pub mod ffmpeg;
pub mod logging;
pub mod naming;
pub mod paths;
pub mod process;
pub mod proto;
pub mod queue;
pub mod readiness;
pub mod recovery;
pub mod scheduler;
pub mod server;
pub mod supervisor;
pub mod worker;
