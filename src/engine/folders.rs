//! The requests about watch folders (`vidvarctl folder ...`): add one,
//! judged as a submission of the client's ([`admission::check_folder`]),
//! within [`MAX_FOLDERS_PER_USER`]; list, show, remove, pause and resume
//! them, each folder seen and changed only by its owner (and the daemon's
//! administrators), another's being "no such folder". Watching them is
//! [`super::watch`]'s.

use super::requests::ApiError;
use super::{Engine, admission};
use crate::folder::{FolderId, FolderSpec, MAX_FOLDERS_PER_USER};
use crate::job::Credentials;
use crate::proto::FolderInfo;
use crate::queue::{FolderRow, NewFolder, unix_now};

impl From<FolderRow> for FolderInfo {
    fn from(row: FolderRow) -> FolderInfo {
        FolderInfo {
            id: row.id,
            spec: row.spec,
            owner_uid: row.owner.uid,
            paused: row.paused,
            created_at: row.created_at,
            node: row.node,
            taken: row.taken,
        }
    }
}

impl Engine {
    /// Watch a folder for `peer`. Returns its id.
    ///
    /// Errors: [`ApiError::Invalid`] or [`ApiError::BadInput`] for a
    /// refused spec (see [`admission::check_folder`]), [`ApiError::Busy`]
    /// when `peer` has [`MAX_FOLDERS_PER_USER`] folders already.
    pub async fn add_folder(
        &self,
        peer: &Credentials,
        spec: FolderSpec,
    ) -> Result<FolderId, ApiError> {
        if self.is_stopping() {
            return Err(ApiError::ShuttingDown);
        }
        let judge = self.judge_for(peer);
        let spec = tokio::task::spawn_blocking(move || admission::check_folder(&spec, &judge))
            .await
            .map_err(|e| ApiError::Internal(format!("the folder check failed: {e}")))??;
        let dir = spec.dir.clone();
        let folder = NewFolder {
            spec,
            owner: peer.clone(),
            created_at: unix_now(),
        };
        let cap = (!self.is_admin(peer)).then_some(MAX_FOLDERS_PER_USER);
        let id = self.queue.add_folder(folder, cap).await?.map_err(|count| {
            ApiError::Busy(format!(
                "you watch {count} folders; at most {MAX_FOLDERS_PER_USER} are allowed per user \
                 (remove one first)"
            ))
        })?;
        log::info!(
            "folder {id}: watching {} for uid {}",
            crate::escape::logged(&dir),
            peer.uid
        );
        self.folders_changed.notify_one();
        Ok(id)
    }

    /// A folder `peer` may see; others' are "no such folder".
    async fn visible_folder(
        &self,
        peer: &Credentials,
        id: FolderId,
    ) -> Result<FolderRow, ApiError> {
        match self.queue.folder(id).await? {
            Some(row) if self.may_access(peer, row.owner.uid) => Ok(row),
            _ => Err(ApiError::NoFolder(id)),
        }
    }

    /// `peer`'s folders (everyone's for an administrator), by id.
    pub async fn folders(&self, peer: &Credentials) -> Result<Vec<FolderInfo>, ApiError> {
        let owner = (!self.is_admin(peer)).then_some(peer.uid);
        let rows = self.queue.folders(owner).await?;
        Ok(rows.into_iter().map(FolderInfo::from).collect())
    }

    /// One folder of `peer`'s.
    pub async fn folder(&self, peer: &Credentials, id: FolderId) -> Result<FolderInfo, ApiError> {
        self.visible_folder(peer, id).await.map(FolderInfo::from)
    }

    /// Stop watching a folder of `peer`'s and forget it; returns it as it
    /// was. Its jobs stay.
    pub async fn remove_folder(
        &self,
        peer: &Credentials,
        id: FolderId,
    ) -> Result<FolderInfo, ApiError> {
        let row = self.visible_folder(peer, id).await?;
        if !self.queue.remove_folder(id).await? {
            return Err(ApiError::NoFolder(id));
        }
        log::info!("folder {id}: removed by uid {}", peer.uid);
        self.folders_changed.notify_one();
        Ok(row.into())
    }

    /// Pause or resume a folder of `peer`'s.
    pub async fn pause_folder(
        &self,
        peer: &Credentials,
        id: FolderId,
        paused: bool,
    ) -> Result<FolderInfo, ApiError> {
        self.visible_folder(peer, id).await?;
        if !self.queue.set_folder_paused(id, paused).await? {
            return Err(ApiError::NoFolder(id));
        }
        let what = if paused { "paused" } else { "resumed" };
        log::info!("folder {id}: {what} by uid {}", peer.uid);
        self.folders_changed.notify_one();
        self.folder(peer, id).await
    }
}
