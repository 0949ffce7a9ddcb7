//! Jobs stored through the queue's own API ([`vidvar::queue::Queue`],
//! opened with [`vidvar::queue::open`]), never by writing its tables: a
//! benchmark's store of finished jobs is what a daemon would have left.
//! The files named are not read: their places are vetted in name only
//! ([`nowhere`]), which the queue stores and never opens.

use std::path::PathBuf;
use std::time::{Duration, Instant};
use vidvar::effects::{self, Ranges};
use vidvar::history::RunFigures;
use vidvar::job::{Credentials, FileIdentity, Media, Vetted};
use vidvar::queue::{Limits, NewJob, Outcome, Queue, QueueError, Work, unix_now};

/// Limits no seeding reaches.
pub const NO_LIMITS: Limits = Limits {
    max_jobs: u64::MAX,
    max_owner_variations: None,
};

/// Length every seeded input is probed to have, microseconds.
pub const SEEDED_DURATION_US: u64 = 10_000_000;
/// Size recorded for every seeded output, bytes.
pub const SEEDED_OUTPUT_BYTES: u64 = 2_500_000;

/// A place vetted in name only, identity `(1, ino)`: stored by the queue,
/// never opened.
pub fn nowhere(path: &str, ino: u64) -> Vetted {
    Vetted {
        real: path.into(),
        identity: FileIdentity { dev: 1, ino },
    }
}

/// Job `seed` of `inputs` inputs (`/bench/in/clipSEED-I.mp4`) of
/// `variations` variations each into `/bench/out`, owned by this
/// process's user, priority 0, no labels; its effects are drawn as a
/// submit draws them ([`effects::generate`] for `seed`).
pub fn new_job(seed: u64, inputs: u32, variations: u32) -> NewJob {
    let user = nix::unistd::geteuid().as_raw();
    let group = nix::unistd::getegid().as_raw();
    NewJob {
        seed,
        output_dir: (PathBuf::from("/bench/out"), nowhere("/bench/out", 1)),
        variations,
        inputs: (0..inputs)
            .map(|i| {
                let path = format!("/bench/in/clip{seed}-{i}.mp4");
                let sets = effects::generate(&Ranges::default(), seed, i, variations)
                    .expect("the default ranges hold enough distinct sets");
                let ino = 2 + seed * u64::from(inputs) + u64::from(i);
                (PathBuf::from(&path), nowhere(&path, ino), sets)
            })
            .collect(),
        created_at: unix_now(),
        owner: Credentials {
            uid: user,
            gid: group,
            groups: vec![],
        },
        priority: 0,
        labels: Vec::new(),
    }
}

/// Store `jobs` finished jobs of one input and `variations` verified
/// outputs each, as a daemon leaves them: each submitted, its probe and
/// its variations claimed and their outcomes recorded
/// ([`Outcome::Succeeded`], [`SEEDED_OUTPUT_BYTES`] each). The queue must
/// hold no other open work, and no daemon may claim from it meanwhile.
pub async fn finished_jobs(
    queue: &dyn Queue,
    jobs: u32,
    variations: u32,
) -> Result<(), QueueError> {
    for j in 0..jobs {
        queue
            .submit(new_job(u64::from(j), 1, variations), NO_LIMITS)
            .await?
            .expect("no limits");
        drain(queue).await?;
    }
    Ok(())
}

/// Claim and finish the open work until no job is open, one slot's worth
/// at a time (each claim takes a probe or one variation): each probe finds
/// [`SEEDED_DURATION_US`], each variation succeeds. Several loops may
/// drain one queue at once: a loop that finds nothing to claim while
/// others' probes still make work claimable waits 5 ms and looks again.
/// Returns the time of each claim and its recorded outcome.
pub async fn drain(queue: &dyn Queue) -> Result<Vec<Duration>, QueueError> {
    let mut times = Vec::new();
    let mut after = 0;
    loop {
        let start = Instant::now();
        match queue.claim(after, 1).await? {
            Some(Work::Probe { job_id, lease, .. }) => {
                after = job_id;
                let media = Media {
                    duration_us: Some(SEEDED_DURATION_US),
                    ..Media::default()
                };
                assert!(queue.finish_probe(lease, media, 0.).await?, "lease held");
            }
            Some(Work::Encode(batch)) => {
                for work in batch {
                    after = work.job_id;
                    let stem = work.input.file_stem().unwrap_or_default().to_string_lossy();
                    let output = PathBuf::from(format!("/bench/out/{stem}_v{:02}.mp4", work.index));
                    let outcome = Outcome::Succeeded {
                        output,
                        size: SEEDED_OUTPUT_BYTES,
                        quality: None,
                    };
                    let recorded = queue
                        .finish_variation(work.lease, outcome, RunFigures::default())
                        .await?;
                    assert!(recorded.is_some(), "lease held");
                }
            }
            None if queue.queue_depth().await? > 0 => {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            None => return Ok(times),
        }
        times.push(start.elapsed());
    }
}
