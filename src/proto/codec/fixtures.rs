//! Messages the codec's unit tests share: a job's detail with every field
//! set, and the largest submission the limits allow. Tests only.

use crate::proto::*;
use std::path::PathBuf;

pub(super) fn detail() -> JobDetail {
    JobDetail {
        summary: JobSummary {
            id: 7,
            state: JobState::Partial,
            progress: 55.5,
            inputs: 2,
            variations: 3,
            created_at: 1_700_000_000,
            owner_uid: 1000,
            priority: -3,
            paused: true,
            labels: vec!["a".into(), "b c".into()],
            eta_secs: Some(12.5),
        },
        seed: u64::MAX,
        output_dir: "/out".into(),
        files: vec![FileStatus {
            path: "/in/a b.mp4".into(),
            state: FileState::Failed,
            progress: 33.3,
            done_variations: 1,
            duration_secs: None,
            encoded_secs: Some(3.5),
            error: Some("not a video".into()),
            nodes: vec!["node-a".into()],
            running: vec![
                RunningVariation {
                    index: 2,
                    percent: Some(40.0),
                    encoded_secs: Some(1.5),
                    speed: Some(2.5),
                    fps: None,
                    node: Some("node-a".into()),
                },
                RunningVariation {
                    index: 3,
                    percent: None,
                    encoded_secs: None,
                    speed: None,
                    fps: None,
                    node: Some("node-b".into()),
                },
            ],
            eta_secs: None,
        }],
        daemon_paused: true,
    }
}

/// The largest submission the limits allow: every path
/// [`MAX_PATH_BYTES`] long, every number at its widest.
pub(super) fn largest_submit() -> Request {
    let path = |c: char| PathBuf::from(format!("/{}", c.to_string().repeat(MAX_PATH_BYTES - 1)));
    Request::Submit(SubmitRequest {
        priority: i32::MIN,
        labels: vec!["l".repeat(MAX_LABEL_BYTES); MAX_LABELS],
        inputs: vec![path('i'); MAX_INPUTS],
        variations: u32::MAX,
        seed: Some(u64::MAX),
        output_dir: path('o'),
    })
}
