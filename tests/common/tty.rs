//! `vidvarctl top` in a real pseudo-terminal: a tmux session of a given
//! size running a command ([`Pane`], killed on drop), what its pane shows
//! (plain, or with its SGR escapes), whether it is in the alternate
//! screen, and keys sent to it. Fails the test when tmux is missing.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// tmux with `args`; fails the test when tmux is missing.
pub fn tmux(args: &[&str]) -> Output {
    Command::new("tmux")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("tmux not found ({e}): install it (packaging/test.sh does)"))
}

/// A tmux session of one pane; killed when dropped, however the test ends.
pub struct Pane(pub String);

impl Pane {
    /// A detached session named `name` (made unique by this process's pid)
    /// of 80x24 running `command` (through tmux's default shell), with the
    /// environment variables `vars` set for it.
    pub fn start(name: &str, command: &str, vars: &[(&str, &str)]) -> Pane {
        Self::sized(name, command, vars, (80, 24))
    }

    /// [`Pane::start`] of `(columns, rows)`.
    pub fn sized(name: &str, command: &str, vars: &[(&str, &str)], size: (u16, u16)) -> Pane {
        let pane = Pane(format!("{name}-{}", std::process::id()));
        let (x, y) = (size.0.to_string(), size.1.to_string());
        let env: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args = vec!["new-session", "-d", "-s", &pane.0, "-x", &x, "-y", &y];
        for e in &env {
            args.extend(["-e", e]);
        }
        args.push(command);
        let started = tmux(&args);
        assert!(started.status.success(), "{started:?}");
        pane
    }

    /// What the pane shows now, as text.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&tmux(&["capture-pane", "-t", &self.0, "-p"]).stdout).into_owned()
    }

    /// What the pane shows now with its colours and attributes as SGR
    /// escapes (`capture-pane -e`).
    pub fn screen_escaped(&self) -> String {
        String::from_utf8_lossy(&tmux(&["capture-pane", "-t", &self.0, "-p", "-e"]).stdout)
            .into_owned()
    }

    /// Wait until the pane shows every one of `wanted`; returns the screen.
    /// Fails the test with the last screen after 30 s.
    pub fn shows(&self, wanted: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = self.screen();
            if wanted.iter().all(|w| text.contains(w)) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for the pane to show {wanted:?}; it shows:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Send `keys` as tmux `send-keys` names them (`q`, `Enter`, `C-c`).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.0];
        args.extend(keys);
        assert!(tmux(&args).status.success());
    }

    /// Type `text` literally, then Enter.
    pub fn type_line(&self, text: &str) {
        assert!(
            tmux(&["send-keys", "-t", &self.0, "-l", text])
                .status
                .success()
        );
        self.keys(&["Enter"]);
    }

    /// Whether the pane is in the alternate screen now (tmux's
    /// `#{alternate_on}`).
    pub fn alternate_on(&self) -> bool {
        let out = tmux(&["display-message", "-p", "-t", &self.0, "#{alternate_on}"]);
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }

    /// The pid of the process the pane runs (`#{pane_pid}`).
    pub fn pid(&self) -> i32 {
        let out = tmux(&["display-message", "-p", "-t", &self.0, "#{pane_pid}"]);
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    /// Whether the session still exists.
    pub fn alive(&self) -> bool {
        tmux(&["has-session", "-t", &self.0]).status.success()
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = tmux(&["kill-session", "-t", &self.0]);
    }
}
