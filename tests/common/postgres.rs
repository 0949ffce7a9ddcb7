//! A private PostgreSQL cluster for one test: initdb and pg_ctl of the
//! system's PostgreSQL (15 or later, from /usr/lib/postgresql/*/bin) in a
//! temp directory, listening on a unix socket there and on no TCP port
//! (the data directory copied from one initdb made once per PostgreSQL
//! version: [`Cluster::init_data`]).
//! initdb refuses to run as root, so the cluster belongs to the `postgres`
//! user and its programs run as that user (setpriv); the test itself must
//! be root. Stopped (immediate mode) when dropped. The one private cluster
//! of tests and benchmarks; `packaging/private-postgres.sh` is the user's
//! own tool for trying a shared queue (README, "Shared queue"), kept apart
//! because it must run without Rust, keeps its cluster across runs and
//! works without root.

use super::daemon::{Daemon, Env};
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
    /// With TLS: the TCP port on localhost, besides the unix socket.
    tls_port: Option<u16>,
    /// Commits reach the disk (`fsync=on`, the server's default); tests
    /// turn it off for speed.
    fsync: bool,
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
        Self::create(false, false)
    }

    /// [`Cluster::start`] with durable commits (`fsync=on`, as a real
    /// server runs), for figures that count what a commit costs.
    pub fn start_durable() -> Cluster {
        Self::create(false, true)
    }

    /// [`Cluster::start`], also listening on a localhost TCP port with TLS
    /// (`ssl=on`), its certificate for `localhost` signed by a CA of its
    /// own ([`Cluster::ca`]), made with openssl(1).
    pub fn start_with_tls() -> Cluster {
        Self::create(true, false)
    }

    fn create(tls: bool, fsync: bool) -> Cluster {
        require_root("a private PostgreSQL cluster runs as the postgres user");
        let bin = find_bin();
        let (uid, gid) = postgres_ids();
        let dir = tempfile::Builder::new().prefix("vvpg").tempdir().unwrap();
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        let tls_port = tls.then(|| {
            // A free port, given back for the server to take.
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        });
        let cluster = Cluster {
            dir,
            bin,
            tls_port,
            fsync,
        };
        cluster.init_data(uid, gid);
        if tls {
            cluster.make_certificates(uid, gid);
        }
        cluster.pg_ctl_start();
        cluster
    }

    /// Make the data directory with initdb, or copy it (`cp -a`) from a
    /// template initdb made for an earlier cluster of this PostgreSQL
    /// version, which takes a tenth of the time: cargo-nextest runs each
    /// test in a process of its own, so every test that needs a cluster
    /// starts one. The template, `vvpg-template-VERSION/data` in the temp
    /// directory, is made once, in a directory of its own renamed into
    /// place, and used only while that directory is root's and writable by
    /// no one else; otherwise each cluster runs initdb itself.
    fn init_data(&self, uid: u32, gid: u32) {
        let data = self.data();
        let version = self.bin.parent().and_then(Path::file_name).unwrap();
        let template =
            std::env::temp_dir().join(format!("vvpg-template-{}", version.to_string_lossy()));
        if !template.join("data/PG_VERSION").exists() {
            let fresh = tempfile::Builder::new()
                .prefix("vvpg-template-new")
                .tempdir()
                .unwrap();
            std::os::unix::fs::chown(fresh.path(), Some(uid), Some(gid)).unwrap();
            self.initdb(&fresh.path().join("data"));
            std::os::unix::fs::chown(fresh.path(), Some(0), Some(0)).unwrap();
            let fresh = fresh.keep();
            if std::fs::rename(&fresh, &template).is_err() {
                std::fs::remove_dir_all(&fresh).unwrap(); // another made it first
            }
        }
        if !Self::trusted(&template) {
            self.initdb(&data);
            return;
        }
        let out = Command::new("cp")
            .arg("-a")
            .arg(template.join("data"))
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success(), "cp -a of the template: {out:?}");
    }

    /// Whether `dir` is a directory of root's that no one else can write.
    fn trusted(dir: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(dir)
            .is_ok_and(|m| m.is_dir() && m.uid() == 0 && m.mode() & 0o022 == 0)
    }

    fn initdb(&self, data: &Path) {
        self.run_ok(
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
    }

    /// The CA that signed the server's certificate (PEM).
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A libpq URL over TCP and TLS to `host` (which must be localhost or
    /// 127.0.0.1) with `params` (e.g. `sslmode=verify-full&sslrootcert=..`).
    pub fn tls_url(&self, host: &str, params: &str) -> String {
        let port = self.tls_port.expect("a cluster started with TLS");
        format!("postgresql://{POSTGRES_USER}@{host}:{port}/postgres?{params}")
    }

    /// A CA and a server certificate for `localhost` signed by it; the key
    /// belongs to the postgres user, mode 0600, as the server demands.
    fn make_certificates(&self, uid: u32, gid: u32) {
        let dir = self.dir.path();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("openssl is installed (.ci/run installs it)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let days = ["-days", "2"];
        openssl(
            &[
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-subj",
                    "/CN=vidvar test CA",
                ][..],
                &days,
            ]
            .concat(),
        );
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost\n").unwrap();
        openssl(
            &[
                &[
                    "x509",
                    "-req",
                    "-in",
                    "server.csr",
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    "server.crt",
                    "-extfile",
                    "san.ext",
                ][..],
                &days,
            ]
            .concat(),
        );
        for name in ["server.key", "server.crt"] {
            std::os::unix::fs::chown(dir.join(name), Some(uid), Some(gid)).unwrap();
        }
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
            "postgresql://{POSTGRES_USER}@/postgres?host={}&port={}",
            self.socket_dir().display(),
            self.port()
        )
    }

    /// A node of the shared queue in this cluster's `postgres` database: a
    /// real vidvard in an [`Env`] of its own, named `name`, with `slots`
    /// slots and the flags `extra`, answering when returned.
    pub fn node(&self, name: &str, slots: &str, extra: &[&str]) -> (Env, Daemon) {
        let env = Env::new();
        let url = self.url();
        let mut args = vec![
            "--database-url",
            &url,
            "--node-name",
            name,
            "--max-parallel",
            slots,
        ];
        args.extend(extra);
        let daemon = env.start(&args);
        (env, daemon)
    }

    /// Create database `name` (an SQL identifier) and return a libpq URL
    /// for it, as [`Cluster::url`] for `postgres`.
    pub fn create_database(&self, name: &str) -> String {
        self.psql(&format!("CREATE DATABASE {name}"));
        self.url().replacen("/postgres?", &format!("/{name}?"), 1)
    }

    /// The server's port: its TCP port with TLS, else the default, which
    /// names its unix socket (`.s.PGSQL.5432`).
    fn port(&self) -> u16 {
        self.tls_port.unwrap_or(5432)
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
        let dir = self.socket_dir().display();
        let fsync = if self.fsync { "on" } else { "off" };
        let options = match self.tls_port {
            None => format!("-k {dir} -c listen_addresses='' -c fsync={fsync}"),
            Some(port) => format!(
                "-k {dir} -c listen_addresses=localhost -p {port} -c fsync={fsync} -c ssl=on \
                 -c ssl_cert_file={dir}/server.crt -c ssl_key_file={dir}/server.key"
            ),
        };
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
        let port = self.port().to_string();
        self.run_ok(
            "psql",
            &[
                "-h",
                &socket,
                "-p",
                &port,
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

/// A psql session kept open on database `postgres`, fed one statement at
/// a time: a transaction that holds locks while the test acts.
pub struct Session {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Session {
    /// Run `sql` (e.g. `BEGIN; LOCK TABLE ..`) and wait until it is done;
    /// what it prints is dropped.
    pub fn run(&mut self, sql: &str) {
        use std::io::{BufRead, Write};
        writeln!(self.stdin, "{sql}; SELECT 'done';").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        while line.trim() != "done" {
            line.clear();
            let read = self.stdout.read_line(&mut line).unwrap();
            assert!(read > 0, "psql ended before {sql:?} was done");
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Cluster {
    /// Open a [`Session`].
    pub fn session(&self) -> Session {
        use std::process::Stdio;
        let mut child = Command::new("setpriv")
            .args(["--reuid", POSTGRES_USER, "--regid", POSTGRES_USER])
            .args(["--init-groups", "--"])
            .arg(self.bin.join("psql"))
            .args(["-h", self.socket_dir().to_str().unwrap()])
            .args(["-p", &self.port().to_string(), "-U", POSTGRES_USER])
            .args(["-d", "postgres", "-XAtq", "-v", "ON_ERROR_STOP=1"])
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run psql (setpriv installed?): {e}"));
        Session {
            stdin: child.stdin.take().unwrap(),
            stdout: std::io::BufReader::new(child.stdout.take().unwrap()),
            child,
        }
    }

    /// How many of the server's backends wait for a lock now in a
    /// statement that matches `pattern` (SQL `LIKE`).
    pub fn lock_waiters(&self, pattern: &str) -> u32 {
        self.psql(&format!(
            "SELECT count(*) FROM pg_stat_activity
             WHERE wait_event_type = 'Lock' AND query LIKE '{pattern}'"
        ))
        .trim()
        .parse()
        .unwrap()
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
