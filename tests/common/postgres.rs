//! A private PostgreSQL cluster for one test: initdb and pg_ctl of the
//! system's PostgreSQL (15 or later, from /usr/lib/postgresql/*/bin) in a
//! temp directory, listening on a unix socket there and on no TCP port.
//! initdb refuses to run as root, so the cluster belongs to the `postgres`
//! user and its programs run as that user (setpriv); the test itself must
//! be root. Stopped (immediate mode) when dropped.

use super::users::require_root;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The system account PostgreSQL's programs run as.
const POSTGRES_USER: &str = "postgres";
/// Oldest major version the shared queue is tested on.
const MIN_MAJOR: u32 = 15;

pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

/// The bin directory of the newest PostgreSQL under /usr/lib/postgresql.
fn find_bin() -> PathBuf {
    let install = "install it: apt-get install -y postgresql (.ci/run does)";
    let versions = std::fs::read_dir("/usr/lib/postgresql").unwrap_or_else(|e| {
        panic!("PostgreSQL is not installed (/usr/lib/postgresql: {e}); {install}")
    });
    let newest = versions
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&major| major >= MIN_MAJOR)
        .max()
        .unwrap_or_else(|| panic!("no PostgreSQL {MIN_MAJOR} or later found; {install}"));
    let bin = PathBuf::from(format!("/usr/lib/postgresql/{newest}/bin"));
    assert!(
        bin.join("initdb").exists() && bin.join("pg_ctl").exists(),
        "{} lacks initdb or pg_ctl; {install}",
        bin.display()
    );
    bin
}

fn postgres_ids() -> (u32, u32) {
    let user = nix::unistd::User::from_name(POSTGRES_USER)
        .unwrap()
        .unwrap_or_else(|| {
            panic!("no {POSTGRES_USER} user; install the postgresql package (.ci/run does)")
        });
    (user.uid.as_raw(), user.gid.as_raw())
}

impl Cluster {
    /// Create and start a cluster; panics with what is missing.
    pub fn start() -> Cluster {
        require_root("a private PostgreSQL cluster runs as the postgres user");
        let bin = find_bin();
        let (uid, gid) = postgres_ids();
        let dir = tempfile::Builder::new().prefix("vvpg").tempdir().unwrap();
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        let cluster = Cluster { dir, bin };
        let data = cluster.data();
        cluster.run_ok(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                POSTGRES_USER,
                "--no-sync",
            ],
        );
        cluster.pg_ctl_start();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory of its unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A libpq URL for vidvard: database `postgres` over the unix socket.
    pub fn url(&self) -> String {
        format!(
            "postgresql://{POSTGRES_USER}@/postgres?host={}",
            self.socket_dir().display()
        )
    }

    /// Run one of PostgreSQL's programs as the postgres user.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        Command::new("setpriv")
            .args([
                "--reuid",
                POSTGRES_USER,
                "--regid",
                POSTGRES_USER,
                "--init-groups",
                "--",
            ])
            .arg(self.bin.join(program))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} (setpriv installed?): {e}"))
    }

    fn run_ok(&self, program: &str, args: &[&str]) -> String {
        let out = self.run(program, args);
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Start the server (again) and wait until it accepts connections.
    pub fn pg_ctl_start(&self) {
        let options = format!(
            "-k {} -c listen_addresses='' -c fsync=off",
            self.socket_dir().display()
        );
        let data = self.data();
        let log = self.dir.path().join("server.log");
        self.run_ok(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
    }

    /// Stop the server at once (connections are cut, as in a crash).
    pub fn pg_ctl_stop(&self) {
        let data = self.data();
        self.run_ok(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    /// Run `sql` with psql; returns its unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> String {
        let socket = self.socket_dir().to_str().unwrap().to_string();
        self.run_ok(
            "psql",
            &[
                "-h",
                &socket,
                "-U",
                POSTGRES_USER,
                "-d",
                "postgres",
                "-XAtq",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
        )
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.run(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"],
        );
    }
}
