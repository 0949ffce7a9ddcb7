//! Schema of the database and its upgrade steps, versioned by
//! `PRAGMA user_version` (SQLite's own schema counter).
//!
//! Step `i` of [`STEPS`] moves a database from version `i` to `i + 1`; each
//! step runs in its own transaction together with the version bump.

/// Upgrade steps, oldest first. Never edit a released step; append one.
pub const STEPS: &[&str] = &[
    r#"
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    state       TEXT    NOT NULL,
    variations  INTEGER NOT NULL,   -- per input
    seed        INTEGER NOT NULL,   -- u64 stored as its i64 bit pattern
    output_dir  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,   -- unix seconds
    finished_at INTEGER
);

CREATE TABLE files (
    id          INTEGER PRIMARY KEY,
    job_id      INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,   -- 0-based position in the job
    path        TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    probed      INTEGER NOT NULL DEFAULT 0,
    duration_us INTEGER,            -- NULL: not probed or unknown
    progress    REAL    NOT NULL DEFAULT 0,  -- percent, flushed about 1/s
    error       TEXT,
    UNIQUE (job_id, idx)
);
CREATE INDEX files_by_state ON files (state, job_id, idx);

CREATE TABLE variations (
    id             INTEGER PRIMARY KEY,
    file_id        INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    idx            INTEGER NOT NULL,  -- 1-based
    rotation       REAL    NOT NULL,
    brightness     REAL    NOT NULL,
    contrast       REAL    NOT NULL,
    saturation     REAL    NOT NULL,
    state          TEXT    NOT NULL,
    temp_path      TEXT,              -- set while an encode may have a file
    output_path    TEXT,              -- set once verified and renamed
    size_bytes     INTEGER,
    pid            INTEGER,           -- FFmpeg process (and group) id
    pid_start_time INTEGER,           -- /proc/PID/stat field 22, clock ticks
    boot_id        TEXT,              -- /proc/sys/kernel/random/boot_id
    error          TEXT,
    UNIQUE (file_id, idx)
);
CREATE INDEX variations_queued ON variations (file_id, idx) WHERE state = 'queued';
CREATE INDEX variations_running ON variations (file_id) WHERE state = 'running';
"#,
    r#"
-- Who submitted each job (SO_PEERCRED); jobs of earlier versions belong to root.
ALTER TABLE jobs ADD COLUMN owner_uid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN owner_gid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN owner_groups TEXT NOT NULL DEFAULT '';  -- gids, space-separated
CREATE INDEX jobs_by_owner ON jobs (owner_uid, id);
CREATE INDEX jobs_open ON jobs (state) WHERE state IN ('queued', 'running');
"#,
    r#"
-- Files as vetted at submit: real path (no symlinks) and identity (st_dev,
-- st_ino as i64 bit patterns); every later open must find the same file.
-- NULL in jobs of earlier versions, which are vetted again when used.
ALTER TABLE jobs ADD COLUMN output_real TEXT;
ALTER TABLE jobs ADD COLUMN output_dev INTEGER;
ALTER TABLE jobs ADD COLUMN output_ino INTEGER;
ALTER TABLE files ADD COLUMN real_path TEXT;
ALTER TABLE files ADD COLUMN dev INTEGER;
ALTER TABLE files ADD COLUMN ino INTEGER;
-- The temporary file of a running variation (st_dev, st_ino): after a
-- crash between publishing and recording, recovery finds the output by it.
ALTER TABLE variations ADD COLUMN temp_dev INTEGER;
ALTER TABLE variations ADD COLUMN temp_ino INTEGER;
"#,
    r#"
-- What the probe found besides the duration (now that of the encoded
-- streams): the video's frame rate as FFmpeg prints it ("30000/1001"),
-- NULL when unknown, and whether it is interlaced.
ALTER TABLE files ADD COLUMN frame_rate TEXT;
ALTER TABLE files ADD COLUMN video_us INTEGER;   -- where the video stream ends
ALTER TABLE files ADD COLUMN interlaced INTEGER NOT NULL DEFAULT 0;
-- The quality check's figures of each output (NULL: not checked).
ALTER TABLE variations ADD COLUMN check_samples INTEGER;
ALTER TABLE variations ADD COLUMN ssim_mean REAL;
ALTER TABLE variations ADD COLUMN ssim_min REAL;
ALTER TABLE variations ADD COLUMN luma_diff REAL;
"#,
    r#"
-- Queue control: a job's priority (higher is claimed first) and whether
-- its owner paused it; its labels; settings of the daemon that survive a
-- restart ('paused': '1' while the daemon is paused).
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
CREATE INDEX jobs_open_by_priority ON jobs (priority DESC, id)
    WHERE state IN ('queued', 'running');
CREATE TABLE labels (
    label  TEXT    NOT NULL,
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    PRIMARY KEY (label, job_id)
) WITHOUT ROWID;
CREATE INDEX labels_by_job ON labels (job_id);
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"#,
    r#"
-- Completion hooks (on_job_end) owed: a row from the moment a job becomes
-- final while hooks are on (settings 'on_job_end' = '1') until its hook
-- has run. 'due': not started; 'running': claimed at started_at (unix
-- seconds), its process recorded once spawned. The triggers make the row
-- part of the very write that ends (or reopens) the job.
CREATE TABLE hooks (
    job_id         INTEGER PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    state          TEXT    NOT NULL,
    started_at     INTEGER,
    pid            INTEGER,
    pid_start_time INTEGER,
    boot_id        TEXT
);
CREATE TRIGGER hooks_due AFTER UPDATE OF state ON jobs
    WHEN NEW.state NOT IN ('queued', 'running') AND OLD.state IN ('queued', 'running')
     AND (SELECT value FROM settings WHERE name = 'on_job_end') = '1'
BEGIN
    INSERT OR REPLACE INTO hooks (job_id, state) VALUES (NEW.id, 'due');
END;
CREATE TRIGGER hooks_reopened AFTER UPDATE OF state ON jobs
    WHEN NEW.state IN ('queued', 'running') AND OLD.state NOT IN ('queued', 'running')
BEGIN
    DELETE FROM hooks WHERE job_id = NEW.id AND state = 'due';
END;
"#,
    r#"
-- The video stream the probe chose (FFmpeg's 0:N) and its picture size
-- as decoded; NULL for files probed before (their encodes probe again).
ALTER TABLE files ADD COLUMN video_stream INTEGER;
ALTER TABLE files ADD COLUMN width INTEGER;
ALTER TABLE files ADD COLUMN height INTEGER;
"#,
    r#"
-- Watch folders (vidvarctl folder add): each settled file of `dir` becomes
-- a job of its owner. Labels are separated by char(31); `after` and
-- `failed` are spelled as --after and --failed take them.
CREATE TABLE folders (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_uid    INTEGER NOT NULL,
    owner_gid    INTEGER NOT NULL,
    owner_groups TEXT    NOT NULL,   -- gids, space-separated
    dir          TEXT    NOT NULL,   -- real path, as vetted
    output_dir   TEXT    NOT NULL,
    variations   INTEGER NOT NULL,
    priority     INTEGER NOT NULL,
    labels       TEXT    NOT NULL,
    settle_secs  INTEGER NOT NULL,
    poll_secs    INTEGER NOT NULL,
    poll_only    INTEGER NOT NULL,
    recursive    INTEGER NOT NULL,
    after        TEXT    NOT NULL,
    failed       TEXT    NOT NULL,
    paused       INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL    -- unix seconds
);
CREATE INDEX folders_by_owner ON folders (owner_uid, id);
-- The ledger: each file a folder took, by identity and content (st_dev,
-- st_ino as i64 bit patterns, size, mtime in ns), taken once. job_id is
-- NULL for a file that was a job's output (never taken) or whose job was
-- pruned; done once its after-action ran.
CREATE TABLE folder_files (
    folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    dev       INTEGER NOT NULL,
    ino       INTEGER NOT NULL,
    size      INTEGER NOT NULL,
    mtime_ns  INTEGER NOT NULL,
    path      TEXT    NOT NULL,
    job_id    INTEGER REFERENCES jobs(id) ON DELETE SET NULL,
    taken_at  INTEGER NOT NULL,
    done      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (folder_id, dev, ino, size, mtime_ns)
) WITHOUT ROWID;
CREATE INDEX folder_files_open ON folder_files (folder_id) WHERE done = 0;
CREATE INDEX folder_files_by_job ON folder_files (job_id);
-- Outputs are found by identity (a published output is its temporary
-- file's inode), so that a folder never takes one.
CREATE INDEX variations_by_temp ON variations (temp_dev, temp_ino) WHERE temp_dev IS NOT NULL;
"#,
    r#"
-- History (issue 26), kept apart from the job rows: no foreign key, so
-- prune and retention_days leave it. `runs`: one row per variation run
-- when it ends (labels newline-separated, times unix seconds), deleted
-- history::HISTORY_DAYS after its end. `counters`: values that never go
-- down (node '' on one machine; a histogram's key is its bucket's bound).
CREATE TABLE runs (
    id            INTEGER PRIMARY KEY,
    job_id        INTEGER NOT NULL,
    idx           INTEGER NOT NULL,
    owner_uid     INTEGER NOT NULL,
    labels        TEXT    NOT NULL,
    node          TEXT,
    outcome       TEXT    NOT NULL,
    reason        TEXT,
    started_at    INTEGER NOT NULL,
    ended_at      INTEGER NOT NULL,
    wall_seconds  REAL    NOT NULL,
    cpu_seconds   REAL    NOT NULL,
    media_seconds REAL    NOT NULL,
    ssim_min      REAL
);
CREATE INDEX runs_by_end ON runs (ended_at);
-- A job's labels on its own row too (newline-separated, as submitted),
-- so that a run's end copies them without reading the labels table.
ALTER TABLE jobs ADD COLUMN label_list TEXT NOT NULL DEFAULT '';
UPDATE jobs SET label_list = COALESCE((SELECT group_concat(label, char(10))
    FROM (SELECT label FROM labels WHERE job_id = jobs.id ORDER BY label)), '');
CREATE TABLE counters (
    node  TEXT NOT NULL,
    name  TEXT NOT NULL,
    key   TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (node, name, key)
) WITHOUT ROWID;
"#,
    r#"
-- The probe's CPU seconds (issue 26), shared evenly by its file's
-- variations: each one's share waits here until its next run is recorded
-- in the history, which takes it (then 0).
ALTER TABLE variations ADD COLUMN probe_cpu_seconds REAL NOT NULL DEFAULT 0;
"#,
];
