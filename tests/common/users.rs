//! Unprivileged users made for a test with useradd(8) and removed with
//! userdel(8) when dropped; commands run as them with setpriv(1). Needs
//! root: a test that calls [`require_root`] without it fails saying so.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Fail the calling test, with the reason, unless it runs as root.
pub fn require_root(what: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root ({what}); run the suite as root, as CI does"
    );
}

/// A user (with a group of the same name) that exists while this lives.
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl User {
    /// Create a user named `<prefix><pid>x<n>`, also a member of `groups`
    /// (group names). useradd is retried while another test holds the
    /// lock on /etc/passwd, and with the next `n` when the name is taken
    /// (useradd exit 9: a process with this pid long ago may have left a
    /// group behind that a concurrent userdel could not remove).
    pub fn create(prefix: &str, groups: &[&str]) -> User {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let mut last = None;
        for _ in 0..50 {
            let name = format!(
                "{prefix}{}x{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let mut cmd = Command::new("useradd");
            cmd.args([
                "--no-create-home",
                "--user-group",
                "--shell",
                "/usr/sbin/nologin",
            ]);
            if !groups.is_empty() {
                cmd.args(["--groups", &groups.join(",")]);
            }
            let out = cmd
                .arg(&name)
                .output()
                .expect("useradd (package passwd) is installed");
            if out.status.success() {
                let user = nix::unistd::User::from_name(&name)
                    .unwrap()
                    .expect("useradd made the user");
                return User {
                    name,
                    uid: user.uid.as_raw(),
                    gid: user.gid.as_raw(),
                };
            }
            if out.status.code() != Some(9) {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            last = Some((name, out));
        }
        let (name, out) = last.unwrap();
        panic!(
            "useradd {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `program args...` as this user, with its groups (setpriv(1)).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            &format!("--reuid={}", self.uid),
            &format!("--regid={}", self.gid),
            "--init-groups",
            "--",
        ])
        .arg(program)
        .stdin(Stdio::null());
        cmd
    }

    /// Run `sh -c script` as this user; panics unless it succeeds.
    pub fn sh(&self, script: &str) {
        let out = self.command("sh").args(["-c", script]).output().unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Give `path` to this user (and its group), with `mode`.
    pub fn own(&self, path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid)).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

impl Drop for User {
    /// Kill what still runs as the user (a daemon's orphaned FFmpeg, a
    /// lock holder), then userdel(8) and groupdel(8) of its own group: a
    /// busy user makes userdel fail (exit 8), and a userdel that met
    /// /etc/group locked by another test's useradd removes the user but
    /// leaves the group. Exit 6 of either means already gone.
    fn drop(&mut self) {
        let uid = self.uid.to_string();
        let ours = || {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(self.uid))
                .is_ok_and(|u| u.is_some_and(|u| u.name == self.name))
        };
        let gone = |tool: &str| {
            Command::new(tool)
                .arg(&self.name)
                .output()
                .is_ok_and(|o| o.status.success() || o.status.code() == Some(6))
        };
        // Only while the uid is still this user's: once userdel freed it,
        // useradd may give it to another test's user at once.
        retried(|| {
            if ours() {
                for who in ["-U", "-u"] {
                    let _ = Command::new("pkill").args(["-KILL", who, &uid]).status();
                }
            }
            gone("userdel")
        });
        retried(|| gone("groupdel"));
    }
}

/// Try `done` up to 50 times, 100 ms apart, until it says so.
fn retried(mut done: impl FnMut() -> bool) {
    for _ in 0..50 {
        if done() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// What a command printed, for assertion messages.
pub fn said(out: &Output) -> String {
    format!(
        "status {}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
