//! The state directory (database, its `-wal`/`-shm`, the state lock and the
//! fallback log) is the daemon's user's alone: [`prepare`] judges it,
//! creates it or tightens it before anything in it is opened, and
//! [`open_file`] opens a file in it only when it is a regular file of that
//! user's.
//!
//! The rule: the directory is owned by the daemon's user, not writable by
//! anyone else, reached through no directory or symlink another user
//! controls; every file the daemon keeps there is a regular file of that
//! user's, mode 0600. What the daemon owns but finds looser (the 0750 and
//! 0644 of earlier releases) it tightens, with one log line each; what it
//! cannot make its own it refuses, naming the path and the reason. It must
//! not open, create or follow anything before the judgement.

use crate::paths::{DATABASE_NAME, LOG_FILE_NAME, STATE_LOCK_NAME};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of the state directory.
pub const DIR_MODE: u32 = 0o700;
/// Mode of every file the daemon keeps in the state directory.
pub const FILE_MODE: u32 = 0o600;

/// The files the daemon keeps in its state directory: the SQLite database
/// and the files SQLite makes beside it (sqlite3 "Temporary Files Used By
/// SQLite": `-wal`, `-shm`, `-journal`), the state lock and the fallback
/// log.
pub const STATE_FILES: [&str; 6] = [
    DATABASE_NAME,
    "vidvard.db-wal",
    "vidvard.db-shm",
    "vidvard.db-journal",
    STATE_LOCK_NAME,
    LOG_FILE_NAME,
];

/// Why the state directory or a file in it is refused.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error("cannot create the state directory {}: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot inspect {}: {source}", path.display())]
    Inspect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("refusing the state directory {}: {reason}", path.display())]
    Untrusted { path: PathBuf, reason: String },
    #[error("refusing {} in the state directory: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    #[error("cannot open {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot change {} to mode {mode:o}: {source}", path.display())]
    Tighten {
        path: PathBuf,
        mode: u32,
        #[source]
        source: io::Error,
    },
}

/// The name of user `uid` for messages: `name (uid N)`, or `uid N`.
pub fn user_name(uid: u32) -> String {
    match login_name(uid) {
        Some(name) => format!("{name} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

/// The login name of user `uid` (passwd(5)), if it has one.
pub fn login_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|user| user.name)
}

fn me() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Make `dir` (absolute) a state directory the daemon may use: see the
/// module docs. Creates it (and missing parents) mode 0700 when it does not
/// exist; tightens a directory of ours to 0700 and our files in it to 0600.
///
/// Returns one line per change made, for the log (the logger may not be
/// set up yet when this runs). Errors: [`StateDirError::Untrusted`] for a
/// directory another user owns or may write, or reached through one;
/// [`StateDirError::File`] for a file in it that is not a regular file of
/// ours; the I/O errors of creating, inspecting and tightening.
pub fn prepare(dir: &Path) -> Result<Vec<String>, StateDirError> {
    let untrusted = |path: &Path, reason: String| StateDirError::Untrusted {
        path: path.to_path_buf(),
        reason,
    };
    let dir = &real_dir(dir)?;
    check_route(dir)?;
    let mut changes = Vec::new();
    let created = make_dir(dir, DIR_MODE).map_err(|source| StateDirError::Create {
        path: dir.to_path_buf(),
        source,
    })?;
    if created {
        changes.push(format!(
            "created the state directory {} (mode {DIR_MODE:o})",
            dir.display()
        ));
    }
    // Again: parents made just now, or planted meanwhile, are judged too.
    check_route(dir)?;
    // Judged and tightened through a descriptor opened without following
    // a symlink, so that what is judged is what is changed: a symlink
    // planted meanwhile fails the open.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(dir);
    let handle = match opened {
        Ok(handle) => handle,
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(nix::libc::ELOOP | nix::libc::ENOTDIR)
            ) =>
        {
            return Err(untrusted(dir, "it is not a directory".into()));
        }
        Err(source) => {
            return Err(StateDirError::Inspect {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let meta = handle.metadata().map_err(|source| StateDirError::Inspect {
        path: dir.to_path_buf(),
        source,
    })?;
    if meta.uid() != me() {
        let owner = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(meta.uid()))
            .ok()
            .flatten()
            .map_or(format!("#{}", meta.uid()), |u| u.name);
        return Err(untrusted(
            dir,
            format!(
                "it belongs to {}, not to {} that runs vidvard: whoever owns it controls the \
                 job records. Where the package runs vidvard as {owner}, start it as that user \
                 (`systemctl start vidvard`, or `runuser -u {owner} -- vidvard ...`), or give \
                 this daemon a --state-dir of its own",
                user_name(meta.uid()),
                user_name(me())
            ),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(untrusted(
            dir,
            format!(
                "others may create files in it (mode {mode:o}), so what is there cannot be \
                 trusted: use a directory of your own (mode {DIR_MODE:o})"
            ),
        ));
    }
    // Ours, and nobody else may change its entries: its files are judged
    // by name from here on.
    for name in STATE_FILES {
        let path = dir.join(name);
        if let Some(old) = judge_file(&path)? {
            changes.push(format!(
                "tightened {} from mode {old:o} to {FILE_MODE:o}",
                path.display()
            ));
        }
    }
    if mode & 0o777 != DIR_MODE {
        handle
            .set_permissions(std::fs::Permissions::from_mode(DIR_MODE))
            .map_err(|source| StateDirError::Tighten {
                path: dir.to_path_buf(),
                mode: DIR_MODE,
                source,
            })?;
        changes.push(format!(
            "tightened the state directory {} from mode {mode:o} to {DIR_MODE:o}",
            dir.display()
        ));
    }
    Ok(changes)
}

/// `dir` itself, or where it leads when it is a symlink of root's or the
/// daemon's user's (which nobody else can change), so that the route to
/// the real directory is judged. Another user's symlink is refused.
fn real_dir(dir: &Path) -> Result<PathBuf, StateDirError> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.file_type().is_symlink() => {
            if ![0, me()].contains(&meta.uid()) {
                return Err(StateDirError::Untrusted {
                    path: dir.to_path_buf(),
                    reason: format!("it is a symlink of {}", user_name(meta.uid())),
                });
            }
            std::fs::canonicalize(dir).map_err(|source| StateDirError::Inspect {
                path: dir.to_path_buf(),
                source,
            })
        }
        _ => Ok(dir.to_path_buf()),
    }
}

/// Every directory on the way to `dir` (and each symlink followed there)
/// belongs to root or to the daemon's user, and no directory on the way is
/// writable by others unless sticky (like /tmp, where nobody may rename
/// what is ours): otherwise another user could swap the state directory
/// for one of theirs after it was judged.
fn check_route(dir: &Path) -> Result<(), StateDirError> {
    let me = me();
    let inspect = |path: &Path, source| StateDirError::Inspect {
        path: path.to_path_buf(),
        source,
    };
    let refuse = |path: &Path, reason: String| StateDirError::Untrusted {
        path: dir.to_path_buf(),
        reason: format!("its path goes through {}, {reason}", path.display()),
    };
    // Symlinks on the way, as named: followed only when root's or ours.
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    let mut prefix = PathBuf::new();
    for part in parent.components() {
        prefix.push(part);
        match std::fs::symlink_metadata(&prefix) {
            Ok(meta) if meta.file_type().is_symlink() && ![0, me].contains(&meta.uid()) => {
                return Err(refuse(
                    &prefix,
                    format!("a symlink of {}", user_name(meta.uid())),
                ));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(inspect(&prefix, e)),
        }
    }
    // The directories on the way, where they really are.
    let mut existing = parent;
    let real = loop {
        match std::fs::canonicalize(existing) {
            Ok(real) => break real,
            Err(e) if e.kind() == io::ErrorKind::NotFound => match existing.parent() {
                Some(up) => existing = up,
                None => return Ok(()),
            },
            Err(e) => return Err(inspect(existing, e)),
        }
    };
    for ancestor in real.ancestors() {
        let meta = std::fs::metadata(ancestor).map_err(|e| inspect(ancestor, e))?;
        if ![0, me].contains(&meta.uid()) {
            return Err(refuse(
                ancestor,
                format!("a directory of {}", user_name(meta.uid())),
            ));
        }
        if meta.mode() & 0o022 != 0 && meta.mode() & 0o1000 == 0 {
            return Err(refuse(
                ancestor,
                format!(
                    "a directory others may write (mode {:o})",
                    meta.mode() & 0o7777
                ),
            ));
        }
    }
    Ok(())
}

/// Create `dir` with exactly `mode` whatever the umask, and its missing
/// parents with 0755. `false`: it exists already (made by someone else
/// meanwhile, say), left as it is for the caller to judge.
pub(crate) fn make_dir(dir: &Path, mode: u32) -> io::Result<bool> {
    if let Some(parent) = dir.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)?;
    }
    match std::fs::DirBuilder::new().mode(mode).create(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        other => other?,
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))?;
    Ok(true)
}

fn tighten(path: &Path, mode: u32) -> Result<(), StateDirError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        StateDirError::Tighten {
            path: path.to_path_buf(),
            mode,
            source,
        }
    })
}

/// Judge the state file at `path` if it exists (never following a
/// symlink): a regular file of ours, tightened to [`FILE_MODE`]. Returns
/// its old mode when it was tightened.
fn judge_file(path: &Path) -> Result<Option<u32>, StateDirError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateDirError::Inspect {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    check_file(path, &meta)?;
    let mode = meta.mode() & 0o7777;
    if mode == FILE_MODE {
        return Ok(None);
    }
    tighten(path, FILE_MODE)?;
    Ok(Some(mode))
}

/// A regular file of ours, or the reason it is refused.
fn check_file(path: &Path, meta: &std::fs::Metadata) -> Result<(), StateDirError> {
    let refuse = |reason: String| StateDirError::File {
        path: path.to_path_buf(),
        reason,
    };
    if !meta.file_type().is_file() {
        return Err(refuse(format!(
            "it is {}, not a regular file",
            kind_of(meta)
        )));
    }
    if meta.uid() != me() {
        return Err(refuse(format!(
            "it belongs to {}, not to {}",
            user_name(meta.uid()),
            user_name(me())
        )));
    }
    Ok(())
}

/// What a file is, for messages about what is in the way.
pub fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symlink"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "something else"
    }
}

/// Open (and create, mode [`FILE_MODE`], when `options` says so) the file
/// at `path` in the state directory, never through a symlink, never
/// blocking on a FIFO (`O_NOFOLLOW | O_NONBLOCK`, open(2)), and keep it
/// only when it is a regular file of the daemon's user's.
///
/// Errors: the open's; [`io::ErrorKind::InvalidData`] with the reason for
/// anything else found there.
pub fn open_file(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    let file = options
        .mode(FILE_MODE)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    check_file(path, &meta).map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))?;
    // Blocking again (the file is a regular one); O_APPEND stays.
    let flags = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_GETFL)?;
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) - nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(flags))?;
    Ok(file)
}

/// Create the database file 0600 before SQLite first opens it, so that the
/// `-wal` and `-shm` files SQLite makes beside it take the same mode
/// (SQLite's unix VFS gives them the database file's permissions).
///
/// Errors: [`StateDirError::Open`] with [`open_file`]'s error.
pub fn create_database(path: &Path) -> Result<(), StateDirError> {
    open_file(path, OpenOptions::new().read(true).write(true).create(true))
        .map(drop)
        .map_err(|source| StateDirError::Open {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn a_new_state_directory_is_private_whatever_the_umask() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/state");
        let changes = prepare(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(changes.len(), 1, "{changes:?}");
        create_database(&dir.join(DATABASE_NAME)).unwrap();
        assert_eq!(mode(&dir.join(DATABASE_NAME)), 0o600);
        assert!(prepare(&dir).unwrap().is_empty(), "nothing left to change");
    }

    #[test]
    fn an_older_layout_of_ours_is_tightened_with_a_line_each() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, PermissionsExt::from_mode(0o750)).unwrap();
        for (name, m) in [(DATABASE_NAME, 0o644), ("vidvard.log", 0o640)] {
            std::fs::write(dir.join(name), "x").unwrap();
            std::fs::set_permissions(dir.join(name), PermissionsExt::from_mode(m)).unwrap();
        }
        let changes = prepare(&dir).unwrap();
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(DATABASE_NAME)), 0o600);
        assert_eq!(mode(&dir.join("vidvard.log")), 0o600);
    }

    #[test]
    fn a_writable_directory_or_a_planted_file_is_refused_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, PermissionsExt::from_mode(0o1777)).unwrap();
        let err = prepare(&shared).unwrap_err().to_string();
        assert!(err.contains("others may create files"), "{err}");
        assert_eq!(mode(&shared), 0o1777, "left as it was");

        let dir = tmp.path().join("state");
        std::fs::create_dir(&dir).unwrap();
        nix::unistd::mkfifo(&dir.join("vidvard.log"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let err = prepare(&dir).unwrap_err().to_string();
        assert!(
            err.contains("vidvard.log") && err.contains("a FIFO"),
            "{err}"
        );
        // Opened for reading too, a FIFO opens at once (O_NONBLOCK) and is
        // refused by its type; for writing alone the open itself fails
        // (ENXIO, no reader). Neither blocks.
        let err = open_file(
            &dir.join("vidvard.log"),
            OpenOptions::new().read(true).append(true).create(true),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("a FIFO"), "{err}");
        assert!(
            open_file(
                &dir.join("vidvard.log"),
                OpenOptions::new().append(true).create(true)
            )
            .is_err()
        );
        std::os::unix::fs::symlink("/etc/passwd", dir.join(DATABASE_NAME)).unwrap();
        std::fs::remove_file(dir.join("vidvard.log")).unwrap();
        let err = prepare(&dir).unwrap_err().to_string();
        assert!(err.contains("a symlink"), "{err}");
    }

    #[test]
    fn a_route_through_a_writable_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let open = tmp.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, PermissionsExt::from_mode(0o777)).unwrap();
        let err = prepare(&open.join("state")).unwrap_err().to_string();
        assert!(err.contains("goes through") && err.contains("777"), "{err}");
        assert!(!open.join("state").exists(), "nothing created");
    }
}
