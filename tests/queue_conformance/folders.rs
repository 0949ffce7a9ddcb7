//! Watch folders: the per-owner cap and who sees which folder, the ledger
//! that takes each file once by identity (with its job, in one write), the
//! after-actions owed once a job ended, and the scan lease that lets one
//! node at a time scan a folder.

use super::*;
use vidvar::folder::{AfterAction, FailedAction, FileKey, FolderSpec};
use vidvar::queue::{NewFolder, TakenFile};

fn spec(dir: &str) -> FolderSpec {
    FolderSpec {
        dir: dir.into(),
        output_dir: "/out".into(),
        variations: 2,
        priority: 3,
        labels: vec!["a b".into(), "nightly".into()],
        settle_secs: 10,
        poll_secs: 60,
        poll_only: false,
        recursive: true,
        after: AfterAction::Move("/done".into()),
        failed: FailedAction::Keep,
    }
}

async fn add(q: &dyn Queue, dir: &str, uid: u32, max: Option<u64>) -> Result<i64, u64> {
    let folder = NewFolder {
        spec: spec(dir),
        owner: owner(uid),
        created_at: 1_700_000_000,
    };
    q.add_folder(folder, max).await.unwrap()
}

fn key(ino: u64, size: u64, mtime_ns: i64) -> FileKey {
    FileKey {
        dev: 1,
        ino,
        size,
        mtime_ns,
    }
}

fn taken(folder: i64, key: FileKey) -> TakenFile {
    TakenFile {
        folder,
        key,
        path: format!("/in/{}.mp4", key.ino).into(),
    }
}

/// Take `key` in `folder` as a job of one input of 1 variation of uid 1000.
async fn take(q: &dyn Queue, folder: i64, key: FileKey) -> Option<JobId> {
    q.take_file(taken(folder, key), new_job(1, 1, 1000), NO_LIMITS)
        .await
        .unwrap()
        .unwrap()
}

pub(super) async fn folders_are_their_owners(bed: Bed) {
    let q = &*bed.queue;
    let first = add(q, "/in", 1000, Some(2)).await.unwrap();
    add(q, "/in2", 1000, Some(2)).await.unwrap();
    assert_eq!(add(q, "/in3", 1000, Some(2)).await, Err(2), "the cap");
    let other = add(q, "/in3", 1001, Some(2)).await.unwrap();
    add(q, "/in4", 1000, None).await.unwrap();

    let row = q.folder(first).await.unwrap().unwrap();
    assert_eq!(
        (row.spec.clone(), row.owner.clone()),
        (spec("/in"), owner(1000))
    );
    assert!(!row.paused);
    assert_eq!(row.taken, 0);
    let of = |uid| async move {
        let rows = q.folders(uid).await.unwrap();
        rows.iter().map(|f| f.id).collect::<Vec<_>>()
    };
    assert_eq!(of(Some(1001)).await, [other]);
    assert_eq!(of(Some(1000)).await.len(), 3);
    assert_eq!(of(None).await.len(), 4);

    assert!(q.set_folder_paused(first, true).await.unwrap());
    assert!(q.folder(first).await.unwrap().unwrap().paused);
    let watched: Vec<i64> = q
        .watched_folders()
        .await
        .unwrap()
        .iter()
        .map(|f| f.id)
        .collect();
    assert!(!watched.contains(&first), "a paused folder is not scanned");
    assert_eq!(watched.len(), 3);
    assert!(q.remove_folder(first).await.unwrap());
    assert!(!q.remove_folder(first).await.unwrap());
    assert!(!q.set_folder_paused(first, false).await.unwrap());
    assert_eq!(q.folder(first).await.unwrap(), None);
}

pub(super) async fn ledger_takes_a_file_once(mut bed: Bed) {
    let q = &*bed.queue;
    let folder = add(q, "/in", 1000, None).await.unwrap();
    let other = add(q, "/in", 1001, None).await.unwrap();
    let job = take(q, folder, key(7, 100, 5)).await.expect("a new file");
    assert_eq!(state(q, job).await, JobState::Queued);
    assert_eq!(take(q, folder, key(7, 100, 5)).await, None, "taken once");
    // Another folder has a ledger of its own; new content is a new file.
    assert!(take(q, other, key(7, 100, 5)).await.is_some());
    assert!(take(q, folder, key(7, 100, 6)).await.is_some(), "new mtime");
    assert!(take(q, folder, key(7, 101, 5)).await.is_some(), "new size");
    assert!(take(q, folder, key(8, 100, 5)).await.is_some(), "new inode");
    assert_eq!(q.folder(folder).await.unwrap().unwrap().taken, 4);

    // A job that would pass a limit stores nothing, the entry neither.
    let full = Limits {
        max_jobs: 0,
        max_owner_variations: None,
    };
    let refused = q
        .take_file(taken(folder, key(9, 1, 1)), new_job(1, 1, 1000), full)
        .await
        .unwrap();
    assert!(matches!(refused, Err(Full::Jobs { .. })), "{refused:?}");
    assert!(take(q, folder, key(9, 1, 1)).await.is_some());

    // A verified output is never taken.
    let lease = leases_of_next_file(q).await[0];
    q.set_temp(lease, FileIdentity { dev: 1, ino: 50 })
        .await
        .unwrap();
    assert_eq!(ok(q, lease).await, Some(JobState::Succeeded));
    assert_eq!(take(q, folder, key(50, 3, 3)).await, None, "an output");

    bed.reopen().await;
    let q = &*bed.queue;
    assert_eq!(
        take(q, folder, key(7, 100, 5)).await,
        None,
        "after a restart"
    );
    assert_eq!(take(q, folder, key(50, 3, 3)).await, None);
}

pub(super) async fn ended_files_are_owed_their_action(bed: Bed) {
    let q = &*bed.queue;
    let folder = add(q, "/in", 1000, None).await.unwrap();
    let done = take(q, folder, key(1, 1, 1)).await.unwrap();
    let open = take(q, folder, key(2, 1, 1)).await.unwrap();
    assert_eq!(q.ended_files(folder).await.unwrap(), []);
    let lease = leases_of_next_file(q).await[0];
    ok(q, lease).await;
    assert_eq!(state(q, done).await, JobState::Succeeded);
    let Some(Work::Probe { lease: probe, .. }) = q.claim(0, 1).await.unwrap() else {
        panic!("the other job's probe");
    };
    assert_eq!(state(q, open).await, JobState::Running, "not ended");
    let ended = q.ended_files(folder).await.unwrap();
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0].file, taken(folder, key(1, 1, 1)));
    assert_eq!(ended[0].state, Some(JobState::Succeeded));
    q.file_done(folder, key(1, 1, 1)).await.unwrap();
    assert_eq!(q.ended_files(folder).await.unwrap(), []);

    // A job pruned before its action ran: owed, of no known state.
    q.fail_file(probe, "not a video".into(), RunFigures::default())
        .await
        .unwrap();
    assert_eq!(
        q.ended_files(folder).await.unwrap()[0].state,
        Some(JobState::Failed)
    );
    assert_eq!(q.prune(None, i64::MAX).await.unwrap(), 2);
    let ended = q.ended_files(folder).await.unwrap();
    assert_eq!(ended.len(), 1);
    assert_eq!((ended[0].file.key, ended[0].state), (key(2, 1, 1), None));
    // The ledger outlives the jobs: still taken once.
    assert_eq!(take(q, folder, key(1, 1, 1)).await, None);
}

pub(super) async fn one_node_scans_a_folder(bed: Bed) {
    let q = &*bed.queue;
    let folder = add(q, "/in", 1000, None).await.unwrap();
    let ids = |rows: Vec<vidvar::queue::FolderRow>| rows.iter().map(|f| f.id).collect::<Vec<_>>();
    match q.sharing() {
        Sharing::OneDaemon => {
            assert_eq!(ids(q.watched_folders().await.unwrap()), [folder]);
            assert_eq!(q.folder(folder).await.unwrap().unwrap().node, None);
        }
        Sharing::Nodes => {
            let lease = Duration::from_secs(1);
            let (b, c) = (
                bed.other_node("b", lease).await,
                bed.other_node("c", lease).await,
            );
            let scanned = b.watched_folders().await.unwrap();
            assert_eq!(ids(scanned.clone()), [folder]);
            assert_eq!(scanned[0].node.as_deref(), Some("b"));
            assert!(c.watched_folders().await.unwrap().is_empty(), "b scans it");
            assert!(q.watched_folders().await.unwrap().is_empty());
            assert_eq!(ids(b.watched_folders().await.unwrap()), [folder], "renewed");
            // b goes silent: c takes the folder over, once.
            let deadline = Instant::now() + LIMIT;
            loop {
                if !c.watched_folders().await.unwrap().is_empty() {
                    break;
                }
                assert!(Instant::now() < deadline, "b never found lost");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(
                q.folder(folder).await.unwrap().unwrap().node.as_deref(),
                Some("c")
            );
            // A clean stop lets go of it at once.
            c.leave().await.unwrap();
            assert_eq!(ids(q.watched_folders().await.unwrap()), [folder]);
        }
    }
}
