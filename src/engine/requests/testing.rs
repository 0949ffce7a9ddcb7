//! The request API's test kit: an engine on a real SQLite queue in a temp
//! dir, with no dispatch loop (nothing runs FFmpeg), users, requests and
//! the jobs a user sees.

use super::ApiError;
use crate::config::Config;
use crate::engine::Engine;
use crate::job::Credentials;
use crate::proto::{ErrorKind, JobSummary, ListRequest, MAX_PAGE, SubmitRequest};
use crate::queue::sqlite::SqliteQueue;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An engine on a fresh queue, and a directory with a readable clip
/// and a directory anyone may write.
pub(super) struct Fixture {
    pub(super) engine: Arc<Engine>,
    _dir: tempfile::TempDir,
    pub(super) clip: PathBuf,
    pub(super) out: PathBuf,
}

pub(super) fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let mode = |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    mode(&base, 0o755).unwrap();
    let clip = base.join("clip.mp4");
    std::fs::write(&clip, "not decoded here").unwrap();
    mode(&clip, 0o644).unwrap();
    let out = base.join("out");
    std::fs::create_dir(&out).unwrap();
    mode(&out, 0o777).unwrap();
    let config = Config::new(base.join("s.sock"), base.clone(), base.join("p.pid"));
    let queue = SqliteQueue::open(&base.join("q.db")).unwrap();
    Fixture {
        engine: Engine::new(config, Arc::new(queue)),
        _dir: dir,
        clip,
        out,
    }
}

/// A user who is neither root nor the daemon's user.
pub(super) fn user(uid: u32) -> Credentials {
    assert_ne!(uid, nix::unistd::geteuid().as_raw());
    Credentials {
        uid,
        gid: uid,
        groups: vec![],
    }
}

pub(super) fn root() -> Credentials {
    Credentials {
        uid: 0,
        gid: 0,
        groups: vec![],
    }
}

pub(super) fn request(f: &Fixture, inputs: &[&Path], variations: u32) -> SubmitRequest {
    SubmitRequest {
        priority: 0,
        labels: Vec::new(),
        inputs: inputs.iter().map(|p| p.to_path_buf()).collect(),
        variations,
        seed: Some(7),
        output_dir: f.out.clone(),
    }
}

pub(super) fn kind(err: ApiError) -> ErrorKind {
    err.to_wire().kind
}

/// Every job `peer` sees, in one page.
pub(super) async fn listed(f: &Fixture, peer: &Credentials) -> Vec<JobSummary> {
    let every = ListRequest {
        state: None,
        label: None,
        after: 0,
        limit: MAX_PAGE,
    };
    f.engine.list(peer, every).await.unwrap().jobs
}
