//! Conformance rules: what a stop of the daemon (node) leaves, and how it is settled.

use super::*;

/// After a crash, the variations that were running are listed with what
/// recovery needs (temporary file, its identity, FFmpeg's identity, the
/// output directory); then one daemon fails them (and the probes it had
/// claimed) as interrupted, while a shared queue queues them again. Queued
/// jobs stay queued.
pub(super) async fn recovery_after_a_crash(bed: Bed) {
    let q = &*bed.queue;
    let a = submit(q, 2, 1, 0).await;
    let b = submit(q, 1, 1, 0).await;
    let c = submit(q, 1, 1, 0).await;
    let work = start_next_file(q).await.remove(0);
    let probing = claim(q, b, 2).await;
    assert_eq!(probing, Some((c, "probe /in/0.mp4".into())));
    let identity = FileIdentity { dev: 1, ino: 77 };
    q.set_temp(work.lease, identity).await.unwrap();
    q.set_process(work.lease, process(99)).await.unwrap();
    let left = q.interrupted().await.unwrap();
    assert_eq!(left.len(), 1);
    let temp = vidvar::naming::temp_name(&work.input, 1, work.lease);
    assert_eq!(left[0].lease, work.lease);
    assert_eq!(left[0].temp_path, Some(Path::new("/out").join(temp)));
    assert_eq!(left[0].temp_identity, Some(identity));
    assert_eq!(left[0].process, Some(process(99)));
    assert_eq!(left[0].output_dir, work.output_dir);

    assert_eq!(q.mark_interrupted().await.unwrap(), [a, c]);
    assert!(q.interrupted().await.unwrap().is_empty());
    assert_eq!(state(q, b).await, JobState::Queued);
    match q.sharing() {
        Sharing::OneDaemon => {
            for job in [a, c] {
                assert_eq!(state(q, job).await, JobState::Failed);
                let files = q.files(job).await.unwrap();
                let interrupted = |f: &FileRow| f.error.as_deref() == Some(INTERRUPTED);
                assert!(files.iter().all(interrupted));
            }
            assert_eq!(claim(q, 0, 2).await, Some((b, "probe /in/0.mp4".into())));
            assert_eq!(claim(q, b, 2).await, None);
        }
        Sharing::Nodes => {
            assert_eq!(state(q, a).await, JobState::Running);
            let again = single(q.claim(0, 1).await.unwrap());
            assert_eq!(again.lease.id, work.lease.id);
            assert_eq!(again.previous, None, "settled already");
            assert_eq!(state(q, c).await, JobState::Running);
            assert_eq!(claim(q, a, 2).await, Some((b, "probe /in/0.mp4".into())));
            assert_eq!(claim(q, b, 2).await, Some((c, "probe /in/0.mp4".into())));
        }
    }
}

/// At a clean stop, a running job of which nothing is being encoded is
/// queued again on one machine (it goes on after the restart, probed
/// anew), while work being encoded ends as [`recovery_after_a_crash`]
/// says.
pub(super) async fn clean_stop(bed: Bed) {
    let q = &*bed.queue;
    let busy = submit(q, 1, 1, 0).await;
    let idle = submit(q, 1, 1, 0).await;
    start_next_file(q).await;
    let Some(Work::Probe { job_id, lease, .. }) = q.claim(busy, 2).await.unwrap() else {
        panic!("the idle job's probe");
    };
    assert_eq!(job_id, idle);
    q.finish_probe(lease, media(), 0.).await.unwrap();
    match q.sharing() {
        Sharing::OneDaemon => {
            assert_eq!(q.requeue_idle_jobs().await.unwrap(), [idle]);
            assert_eq!(q.mark_interrupted().await.unwrap(), [busy]);
            assert_eq!(state(q, idle).await, JobState::Queued);
            assert_eq!(file_states(q, idle).await, [FileState::Queued]);
            assert_eq!(claim(q, 0, 2).await, Some((idle, "probe /in/0.mp4".into())));
        }
        Sharing::Nodes => {
            assert!(q.requeue_idle_jobs().await.unwrap().is_empty());
            assert_eq!(q.mark_interrupted().await.unwrap(), [busy]);
            assert_eq!(state(q, idle).await, JobState::Running);
            assert_eq!(
                claim(q, 0, 2).await,
                Some((busy, "encode /in/0.mp4 #1".into()))
            );
            assert_eq!(
                claim(q, busy, 2).await,
                Some((idle, "encode /in/0.mp4 #1".into()))
            );
        }
    }
}
