//! Durations that settings give in seconds (the grace period, the stall
//! timeout, the client idle timeout, the lease timeout, the hook timeout),
//! each checked against the range its setting allows, for the
//! configuration file and the command line alike. Only the checks: each
//! default stays with its setting.

use std::time::Duration;

/// Longest grace period accepted, seconds.
pub const MAX_GRACE_SECS: f64 = 3600.0;

/// `lease_timeout` in range: 3 s to 1 hour (the heartbeat renews leases
/// every second).
pub fn lease_timeout(secs: f64) -> Result<Duration, OutOfRange> {
    seconds_within(secs, 3.0, 3600.0)
}

/// A number of seconds outside the range a setting allows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{value} is not between {min} and {max} seconds")]
pub struct OutOfRange {
    pub value: f64,
    pub min: f64,
    pub max: f64,
}

/// `secs` as a duration when it is within `min..=max` seconds.
pub(super) fn seconds_within(secs: f64, min: f64, max: f64) -> Result<Duration, OutOfRange> {
    if secs.is_finite() && (min..=max).contains(&secs) {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(OutOfRange {
            value: secs,
            min,
            max,
        })
    }
}

/// A grace period from seconds, 0..=[`MAX_GRACE_SECS`].
pub fn grace(secs: f64) -> Result<Duration, OutOfRange> {
    seconds_within(secs, 0.0, MAX_GRACE_SECS)
}

/// A timeout of a second to a day (`stall_timeout`,
/// `client_idle_timeout`) from seconds, 1..=86400.
pub fn timeout(secs: f64) -> Result<Duration, OutOfRange> {
    seconds_within(secs, 1.0, 86_400.0)
}
