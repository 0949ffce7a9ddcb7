//! The password file of libpq (PostgreSQL manual, "The Password File"):
//! `PGPASSFILE`, else `~/.pgpass`; lines `hostname:port:database:username:password`,
//! `*` matching anything, `\:` and `\\` escaped. libpq ignores a file that
//! others can read, and so does this; it also ignores one that is not a
//! regular file or belongs to someone but the daemon's user or root (who
//! could loosen it at will). The file is judged as opened (fstat(2)), so it
//! cannot be swapped between the judgement and the read.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use tokio_postgres::config::{Config, Host};

/// The password for `config`'s first host, port, database and user, if the
/// password file has one.
pub fn lookup(config: &Config) -> Option<String> {
    let path = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass")))?;
    // O_NONBLOCK: a FIFO there cannot hold up the start.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(&path)
        .ok()?;
    let meta = file.metadata().ok()?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_file() || (meta.uid() != me && meta.uid() != 0) {
        log::warn!(
            "password file {} is not a regular file of this daemon's user or root: ignored",
            path.display()
        );
        return None;
    }
    if meta.mode() & 0o077 != 0 {
        log::warn!(
            "password file {} has group or world access: ignored (chmod 0600 it)",
            path.display()
        );
        return None;
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text).ok()?;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        // libpq matches a socket directory as "localhost".
        Some(Host::Unix(_)) | None => "localhost".into(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user().unwrap_or_default().to_string();
    let dbname = config.get_dbname().unwrap_or(&user).to_string();
    find(&text, [&host, &port, &dbname, &user])
}

/// The password of the first line of `text` whose four fields match
/// `wanted` (host, port, database, user).
fn find(text: &str, wanted: [&str; 4]) -> Option<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(fields)
        .find(|f| {
            f.len() == 5
                && f[..4]
                    .iter()
                    .zip(wanted)
                    .all(|(field, want)| field == "*" || field == want)
        })
        .map(|mut f| f.remove(4))
}

/// The `:`-separated fields of a line, unescaped.
fn fields(line: &str) -> Vec<String> {
    let (mut out, mut field) = (Vec::new(), String::new());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => field.push(chars.next().unwrap_or('\\')),
            ':' if out.len() < 4 => out.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    out.push(field);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_matching_line_wins_with_wildcards_and_escapes() {
        let text = "# comment\nother:5432:*:u:nope\n*:5432:db:u:pa\\:ss\n*:*:*:*:last\n";
        assert_eq!(
            find(text, ["localhost", "5432", "db", "u"]).as_deref(),
            Some("pa:ss")
        );
        assert_eq!(find(text, ["h", "1", "x", "y"]).as_deref(), Some("last"));
        assert_eq!(find("a:b:c:d\n", ["a", "b", "c", "d"]), None);
    }
}
