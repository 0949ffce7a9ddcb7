//! Schema of the shared queue in PostgreSQL and its upgrade steps,
//! versioned by the one row of `vidvar_schema`.
//!
//! Step `i` of [`STEPS`] moves a database from version `i` to `i + 1`; each
//! step runs in one transaction with the version bump, under an advisory
//! lock, so nodes that start together upgrade it once.

/// Key of the transaction-level advisory lock (pg_advisory_xact_lock) taken
/// while the schema is checked and upgraded: "vidvar" in ASCII.
pub const MIGRATION_LOCK: i64 = 0x76_69_64_76_61_72;

/// Key of the advisory lock that lets one submission at a time check the
/// limits and insert: "vidvar" + 1.
pub const SUBMIT_LOCK: i64 = MIGRATION_LOCK + 1;

/// Creates the version table; run before every check, harmless when done.
pub const VERSION_TABLE: &str = "
CREATE TABLE IF NOT EXISTS vidvar_schema (version integer NOT NULL);
INSERT INTO vidvar_schema (version)
    SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM vidvar_schema);";

/// Upgrade steps, oldest first. Never edit a released step; append one.
pub const STEPS: &[&str] = &[
    r#"
-- Every vidvard node that shares this queue, by its unique name.
CREATE TABLE nodes (
    name           text PRIMARY KEY,
    host           text        NOT NULL,
    pid            integer     NOT NULL,
    pid_start_time bigint      NOT NULL,  -- /proc/PID/stat field 22
    boot_id        text        NOT NULL,  -- /proc/sys/kernel/random/boot_id
    slots          integer     NOT NULL,  -- max_parallel
    started_at     timestamptz NOT NULL DEFAULT now(),
    heartbeat_at   timestamptz NOT NULL DEFAULT now(),
    stopped        boolean     NOT NULL DEFAULT false
);

CREATE TABLE jobs (
    id           bigserial PRIMARY KEY,
    state        text     NOT NULL,
    variations   integer  NOT NULL,  -- per input
    seed         bigint   NOT NULL,  -- u64 stored as its i64 bit pattern
    output_dir   text     NOT NULL,
    output_real  text     NOT NULL,  -- as vetted: no symlinks
    output_dev   bigint   NOT NULL,
    output_ino   bigint   NOT NULL,
    created_at   bigint   NOT NULL,  -- unix seconds
    finished_at  bigint,
    owner_uid    bigint   NOT NULL,
    owner_gid    bigint   NOT NULL,
    owner_groups bigint[] NOT NULL
);
CREATE INDEX jobs_by_owner ON jobs (owner_uid, id);
CREATE INDEX jobs_open ON jobs (state) WHERE state IN ('queued', 'running');

-- An input file. Its probe is claimed like a variation: node, attempt and
-- lease_until while state = 'running' and not probed.
CREATE TABLE files (
    id          bigserial PRIMARY KEY,
    job_id      bigint  NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx         integer NOT NULL,  -- 0-based position in the job
    path        text    NOT NULL,
    real_path   text    NOT NULL,
    dev         bigint  NOT NULL,
    ino         bigint  NOT NULL,
    state       text    NOT NULL,
    probed      boolean NOT NULL DEFAULT false,
    duration_us bigint,
    progress    double precision NOT NULL DEFAULT 0,
    error       text,
    node        text,
    attempt     bigint  NOT NULL DEFAULT 0,
    lease_until timestamptz,
    UNIQUE (job_id, idx)
);
CREATE INDEX files_open ON files (job_id, idx) WHERE state IN ('queued', 'running');

-- A variation. A claim sets node, attempt (+1) and lease_until; every later
-- write about it names the node and the attempt (fencing).
CREATE TABLE variations (
    id             bigserial PRIMARY KEY,
    file_id        bigint  NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    idx            integer NOT NULL,  -- 1-based
    rotation       double precision NOT NULL,
    brightness     double precision NOT NULL,
    contrast       double precision NOT NULL,
    saturation     double precision NOT NULL,
    state          text    NOT NULL,
    temp_path      text,
    temp_dev       bigint,
    temp_ino       bigint,
    output_path    text,
    size_bytes     bigint,
    pid            integer,
    pid_start_time bigint,
    boot_id        text,
    error          text,
    node           text,
    attempt        bigint  NOT NULL DEFAULT 0,
    lease_until    timestamptz,
    UNIQUE (file_id, idx)
);
CREATE INDEX variations_open ON variations (file_id, idx) WHERE state IN ('queued', 'running');
CREATE INDEX variations_by_node ON variations (node) WHERE state = 'running';

-- FFmpeg processes of claims that another node took over: killed by their
-- own node when it starts again (only that node may judge its processes).
CREATE TABLE orphans (
    node           text    NOT NULL,
    pid            integer NOT NULL,
    pid_start_time bigint  NOT NULL,
    boot_id        text    NOT NULL
);
"#,
    r#"
-- Whether work claimed by `node` may be taken over, besides its lease
-- having expired: the node has not beaten for a lease time either, and the
-- server itself has run that long (after a restart of the database every
-- lease looks expired until the nodes beat again).
CREATE FUNCTION owner_silent(node text, lease_secs float8) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT pg_postmaster_start_time() < now() - make_interval(secs => lease_secs)
       AND NOT EXISTS (SELECT 1 FROM nodes n WHERE n.name = node
                       AND n.heartbeat_at > now() - make_interval(secs => lease_secs))
$$;
"#,
    r#"
-- What the probe found besides the duration (now that of the encoded
-- streams): the video's frame rate as FFmpeg prints it ("30000/1001"),
-- NULL when unknown, and whether it is interlaced.
ALTER TABLE files ADD COLUMN frame_rate text;
ALTER TABLE files ADD COLUMN video_us bigint;  -- where the video stream ends
ALTER TABLE files ADD COLUMN interlaced boolean NOT NULL DEFAULT false;
-- The quality check's figures of each output (NULL: not checked).
ALTER TABLE variations ADD COLUMN check_samples integer;
ALTER TABLE variations ADD COLUMN ssim_mean double precision;
ALTER TABLE variations ADD COLUMN ssim_min double precision;
ALTER TABLE variations ADD COLUMN luma_diff double precision;
"#,
    r#"
-- Queue control: a job's priority (higher is claimed first) and whether
-- its owner paused it; its labels; whether a node was paused (it claims
-- nothing; kept across its restarts).
ALTER TABLE jobs ADD COLUMN priority integer NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN paused boolean NOT NULL DEFAULT false;
CREATE TABLE labels (
    label  text   NOT NULL,
    job_id bigint NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (label, job_id)
);
CREATE INDEX labels_by_job ON labels (job_id);
ALTER TABLE nodes ADD COLUMN paused boolean NOT NULL DEFAULT false;
"#,
    r#"
-- Completion hooks (on_job_end) owed: a row from the moment a job becomes
-- final through a node whose hooks are on (nodes.hooks; a connection names
-- its node in the setting vidvar.node) until a node with hooks on has run
-- it. 'due': not started; 'running': claimed by `node` at started_at (unix
-- seconds), its process recorded once spawned. The trigger makes the row
-- part of the very write that ends (or reopens) the job.
ALTER TABLE nodes ADD COLUMN hooks boolean NOT NULL DEFAULT false;
CREATE TABLE hooks (
    job_id         bigint PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    state          text   NOT NULL,
    node           text,
    started_at     bigint,
    pid            integer,
    pid_start_time bigint,
    boot_id        text
);
CREATE FUNCTION hooks_follow_job() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state NOT IN ('queued', 'running') AND OLD.state IN ('queued', 'running') THEN
        IF EXISTS (SELECT 1 FROM nodes
                   WHERE name = current_setting('vidvar.node', true) AND hooks) THEN
            INSERT INTO hooks (job_id, state) VALUES (NEW.id, 'due')
            ON CONFLICT (job_id) DO UPDATE
                SET state = 'due', node = NULL, started_at = NULL,
                    pid = NULL, pid_start_time = NULL, boot_id = NULL;
        END IF;
    ELSIF NEW.state IN ('queued', 'running') AND OLD.state NOT IN ('queued', 'running') THEN
        DELETE FROM hooks WHERE job_id = NEW.id AND state = 'due';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER hooks_follow_job AFTER UPDATE OF state ON jobs
    FOR EACH ROW EXECUTE FUNCTION hooks_follow_job();
"#,
    r#"
-- The video stream the probe chose (FFmpeg's 0:N) and its picture size
-- as decoded; NULL for files probed before (their encodes probe again).
ALTER TABLE files ADD COLUMN video_stream integer;
ALTER TABLE files ADD COLUMN width integer;
ALTER TABLE files ADD COLUMN height integer;
"#,
    r#"
-- Watch folders (vidvarctl folder add): each settled file of `dir` becomes
-- a job of its owner. `after` and `failed` are spelled as --after and
-- --failed take them. One node at a time scans a folder: `node` holds its
-- scan lease until `lease_until`, taken over as claims are when that node
-- is silent (owner_silent).
CREATE TABLE folders (
    id           bigserial PRIMARY KEY,
    owner_uid    bigint   NOT NULL,
    owner_gid    bigint   NOT NULL,
    owner_groups bigint[] NOT NULL,
    dir          text     NOT NULL,  -- real path, as vetted
    output_dir   text     NOT NULL,
    variations   integer  NOT NULL,
    priority     integer  NOT NULL,
    labels       text[]   NOT NULL,
    settle_secs  integer  NOT NULL,
    poll_secs    integer  NOT NULL,
    poll_only    boolean  NOT NULL,
    recursive    boolean  NOT NULL,
    after        text     NOT NULL,
    failed       text     NOT NULL,
    paused       boolean  NOT NULL DEFAULT false,
    created_at   bigint   NOT NULL,  -- unix seconds
    node         text,
    lease_until  timestamptz
);
CREATE INDEX folders_by_owner ON folders (owner_uid, id);
-- The ledger: each file a folder took, by identity and content (st_dev,
-- st_ino as i64 bit patterns, size, mtime in ns), taken once by any node.
-- job_id is NULL for a file that was a job's output (never taken) or whose
-- job was pruned; done once its after-action ran.
CREATE TABLE folder_files (
    folder_id bigint  NOT NULL REFERENCES folders (id) ON DELETE CASCADE,
    dev       bigint  NOT NULL,
    ino       bigint  NOT NULL,
    size      bigint  NOT NULL,
    mtime_ns  bigint  NOT NULL,
    path      text    NOT NULL,
    job_id    bigint  REFERENCES jobs (id) ON DELETE SET NULL,
    taken_at  bigint  NOT NULL,
    done      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (folder_id, dev, ino, size, mtime_ns)
);
CREATE INDEX folder_files_open ON folder_files (folder_id) WHERE NOT done;
CREATE INDEX folder_files_by_job ON folder_files (job_id);
-- Outputs are found by identity (a published output is its temporary
-- file's inode), so that a folder never takes one.
CREATE INDEX variations_by_temp ON variations (temp_dev, temp_ino) WHERE temp_dev IS NOT NULL;
"#,
    r#"
-- History (issue 26), kept apart from the job rows: no foreign key, so
-- prune and retention_days leave it. `runs`: one row per variation run
-- when it ends (times unix seconds), deleted history::HISTORY_DAYS after
-- its end. `counters`: values that never go down, each node its own rows
-- (a histogram's key is its bucket's bound).
CREATE TABLE runs (
    id            bigserial PRIMARY KEY,
    job_id        bigint  NOT NULL,
    idx           integer NOT NULL,
    owner_uid     bigint  NOT NULL,
    labels        text[]  NOT NULL,
    node          text,
    outcome       text    NOT NULL,
    reason        text,
    started_at    bigint  NOT NULL,
    ended_at      bigint  NOT NULL,
    wall_seconds  double precision NOT NULL,
    cpu_seconds   double precision NOT NULL,
    media_seconds double precision NOT NULL,
    ssim_min      double precision
);
CREATE INDEX runs_by_end ON runs (ended_at);
-- A job's labels on its own row too (as submitted, sorted), so that a
-- run's end copies them from the row it has locked, without reading the
-- labels table.
ALTER TABLE jobs ADD COLUMN label_list text[] NOT NULL DEFAULT '{}';
UPDATE jobs j SET label_list = ARRAY(SELECT l.label FROM labels l WHERE l.job_id = j.id
                                     ORDER BY l.label);
CREATE TABLE counters (
    node  text NOT NULL,
    name  text NOT NULL,
    key   text NOT NULL,
    value double precision NOT NULL,
    PRIMARY KEY (node, name, key)
);
"#,
    r#"
-- The probe's CPU seconds (issue 26), shared evenly by its file's
-- variations: each one's share waits here until its next run is recorded
-- in the history, which takes it (then 0).
ALTER TABLE variations ADD COLUMN probe_cpu_seconds double precision NOT NULL DEFAULT 0;
"#,
];
