//! This daemon's own settings in the SQLite queue, which survive its
//! restarts: whether it is paused (it claims nothing) and whether jobs
//! that end owe a completion hook.

use super::error::Result;
use super::store::Store;
use rusqlite::OptionalExtension;

impl Store {
    /// Whether the daemon is paused.
    pub fn paused(&self) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT value FROM settings WHERE name = 'paused'",
                [],
                |r| r.get::<_, String>(0),
            )
            .optional()?
            .is_some_and(|v| v == "1"))
    }

    /// Pause or resume the daemon.
    pub fn set_paused(&mut self, paused: bool) -> Result<()> {
        self.set_flag("paused", paused)
    }

    /// Whether jobs that become final from now on owe a completion hook.
    pub fn set_hooks(&mut self, on: bool) -> Result<()> {
        self.set_flag("on_job_end", on)
    }

    /// Store a setting that is on (`'1'`) or off (`'0'`).
    fn set_flag(&mut self, name: &str, on: bool) -> Result<()> {
        self.conn.execute(
            "INSERT INTO settings (name, value) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET value = ?2",
            [name, if on { "1" } else { "0" }],
        )?;
        Ok(())
    }
}
