//! How a node reaches the shared database: a configuration file holding
//! a password must be private and never shows it, TLS checks the server as
//! sslmode asks, and a schema newer than the binary is refused untouched.

use super::*;

#[test]
fn a_configuration_file_with_a_password_must_be_private_and_never_shows_it() {
    let env = Env::new();
    let config = env.path("vidvard.conf");
    std::fs::write(
        &config,
        "database_url = \"postgresql://vidvar:s3cret-pw@db.invalid/vidvar\"\n",
    )
    .unwrap();
    let check = |mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(mode)).unwrap();
        std::process::Command::new(common::VIDVARD)
            .args(["--check-config", "--config", s(&config)])
            .output()
            .unwrap()
    };
    let open = check(0o644);
    let err = String::from_utf8_lossy(&open.stderr);
    assert!(
        !open.status.success(),
        "a password others may read is refused"
    );
    assert!(
        err.contains("others may read it") && err.contains("vidvard.conf"),
        "{err}"
    );
    let private = check(0o600);
    let text = String::from_utf8_lossy(&private.stdout);
    assert!(
        private.status.success(),
        "{}",
        String::from_utf8_lossy(&private.stderr)
    );
    assert!(
        text.contains("db.invalid") && text.contains("node_name"),
        "{text}"
    );
    for out in [&open, &private] {
        let all = [&out.stdout[..], &out.stderr[..]].concat();
        assert!(
            !String::from_utf8_lossy(&all).contains("s3cret-pw"),
            "the password never shows"
        );
    }
}

#[test]
fn tls_to_the_database_checks_the_server_as_sslmode_asks() {
    let pg = Cluster::start_with_tls();
    let ca = pg.ca();
    let full = pg.tls_url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", s(&ca)),
    );
    let env = Env::new();
    let daemon = env.start(&["--database-url", &full, "--node-name", "tls"]);
    let encrypted = pg.psql(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.application_name = 'vidvard tls' AND s.ssl",
    );
    assert_ne!(encrypted.trim(), "0", "vidvard's connections use TLS");
    let input = env.path("in.mp4");
    make_video(&input, 1.0, "160x120", false);
    let job = env.submit(&["-n", "1", "-o", s(&env.out_dir()), s(&input)]);
    env.wait_job(job, Duration::from_secs(60), |d| {
        d["summary"]["state"] == "succeeded"
    });
    assert_eq!(output_nodes(&env, job), ["tls"]);
    drop(daemon);

    let refused = |url: &str| {
        let other = Env::new();
        let out = other.run_vidvard(
            &other.socket(),
            &other.state_dir(),
            &other.pidfile(),
            &["--database-url", url, "--node-name", "refused"],
        );
        assert!(!out.status.success(), "{url} is refused");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // A certificate that does not name the host: verify-ca takes it,
    // verify-full does not.
    let by_address = |mode: &str| {
        pg.tls_url(
            "127.0.0.1",
            &format!("sslmode={mode}&sslrootcert={}", s(&ca)),
        )
    };
    let err = refused(&by_address("verify-full"));
    assert!(err.contains("certificate"), "{err}");
    let _ca_only = Env::new().start(&["--database-url", &by_address("verify-ca")]);
    // A server signed by another CA is refused even by verify-ca.
    let stranger = env.path("stranger.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=stranger",
            "-keyout",
            "/dev/null",
            "-out",
            s(&stranger),
        ])
        .output()
        .unwrap();
    assert!(made.status.success());
    let err = refused(&pg.tls_url(
        "localhost",
        &format!("sslmode=verify-ca&sslrootcert={}", s(&stranger)),
    ));
    assert!(err.contains("certificate"), "{err}");
}

#[test]
fn a_schema_newer_than_the_binary_is_refused_and_left_untouched() {
    let pg = Cluster::start();
    let (_a, node_a) = node(&pg, "node-a", &[]);
    drop(node_a);
    pg.psql("UPDATE vidvar_schema SET version = 999");
    let other = Env::new();
    let out = other.run_vidvard(
        &other.socket(),
        &other.state_dir(),
        &other.pidfile(),
        &["--database-url", &pg.url(), "--node-name", "newer"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("version 999") && err.contains("upgrade vidvard"),
        "{err}"
    );
    assert_eq!(pg.psql("SELECT version FROM vidvar_schema").trim(), "999");
    assert_eq!(
        pg.psql("SELECT count(*) FROM nodes WHERE name = 'newer'")
            .trim(),
        "0",
        "nothing was written"
    );
}
