//! Groups the settings name (the socket group, the metrics socket's group),
//! by name or number, looked up in the group database. This module changes
//! no file's group: the daemon does that.

/// Why a group cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error("no such group: {0}")]
    NoSuchGroup(String),
    #[error("cannot look up group {group}: {source}")]
    Lookup {
        group: String,
        #[source]
        source: nix::Error,
    },
}

/// Name of the system mode's socket group, when the group exists.
pub const DEFAULT_SOCKET_GROUP: &str = "vidvar";

/// A group by name or number.
///
/// Errors: [`GroupError`] naming the group when no such group exists.
pub fn group_id(group: &str) -> Result<u32, GroupError> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(GroupError::NoSuchGroup(group.into())),
        Err(source) => Err(GroupError::Lookup {
            group: group.into(),
            source,
        }),
    }
}
