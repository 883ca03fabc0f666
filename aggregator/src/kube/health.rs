//! The health of each Kubernetes watcher, and the gaps it leaves in the
//! evidence while it is not in sync.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use gpuscope_diagnose::Gap;

use crate::sync::lock;

/// Where one watcher stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchState {
    /// Listing for the first time (nothing known yet).
    Syncing {
        /// When the watcher started.
        since: SystemTime,
    },
    /// Listed, and watching for changes.
    Ready {
        /// When the last complete list arrived.
        since: SystemTime,
    },
    /// The last list or watch failed; retrying with backoff. What was
    /// known before is kept, but may be stale.
    Failed {
        /// When the failures began (the first of a run of failures).
        since: SystemTime,
        /// The latest error.
        error: String,
        /// Failed attempts since `since`.
        attempts: u32,
    },
}

/// One watcher's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatcherHealth {
    /// The kind of evidence it feeds, as a gap names it (`pods`, `node`,
    /// `events`, `pvcs`).
    pub what: &'static str,
    /// Where it stands.
    pub state: WatchState,
    /// When it last completed a list; `None`: never.
    pub last_synced: Option<SystemTime>,
}

/// Every watcher's health, by watcher name (`pods`, `pods in ml`,
/// `device-plugin pods app=nvidia-device-plugin-daemonset`, ...).
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<Mutex<BTreeMap<String, WatcherHealth>>>);

impl Health {
    /// Registers a watcher as syncing.
    pub fn register(&self, name: &str, what: &'static str) {
        lock(&self.0).insert(
            name.to_owned(),
            WatcherHealth {
                what,
                state: WatchState::Syncing {
                    since: SystemTime::now(),
                },
                last_synced: None,
            },
        );
    }

    /// The watcher completed a list.
    pub fn ready(&self, name: &str) {
        if let Some(h) = lock(&self.0).get_mut(name) {
            let now = SystemTime::now();
            if let WatchState::Failed { since, .. } = &h.state {
                tracing::info!(watcher = name, failing_for = ?now.duration_since(*since).unwrap_or_default(), "Kubernetes watch recovered.");
            }
            h.state = WatchState::Ready { since: now };
            h.last_synced = Some(now);
        }
    }

    /// The watcher failed with `error`.
    pub fn failed(&self, name: &str, error: String) {
        if let Some(h) = lock(&self.0).get_mut(name) {
            match &mut h.state {
                WatchState::Failed {
                    error: e, attempts, ..
                } => {
                    *e = error;
                    *attempts += 1;
                }
                _ => {
                    tracing::warn!(watcher = name, error = %error, "Kubernetes watch failed; retrying with backoff.");
                    h.state = WatchState::Failed {
                        since: SystemTime::now(),
                        error,
                        attempts: 1,
                    };
                }
            }
        }
    }

    /// Every watcher, by name.
    pub fn snapshot(&self) -> BTreeMap<String, WatcherHealth> {
        lock(&self.0).clone()
    }

    /// Whether every watcher has completed its current list.
    pub fn all_ready(&self) -> bool {
        lock(&self.0)
            .values()
            .all(|h| matches!(h.state, WatchState::Ready { .. }))
    }

    /// One gap per watcher that is not in sync, saying which data is
    /// stale and since when.
    pub fn gaps(&self) -> Vec<Gap> {
        lock(&self.0)
            .iter()
            .filter_map(|(name, h)| gap(name, h))
            .collect()
    }
}

fn gap(name: &str, h: &WatcherHealth) -> Option<Gap> {
    let why = match &h.state {
        WatchState::Ready { .. } => return None,
        WatchState::Syncing { since } => {
            format!("{name}: first list not finished (started {})", time(*since))
        }
        WatchState::Failed {
            since,
            error,
            attempts,
        } => {
            let data = match h.last_synced {
                Some(t) => format!("data as of {}", time(t)),
                None => "never listed".to_owned(),
            };
            format!(
                "{name}: watch failing since {} ({attempts} attempts, retrying): {error}; {data}",
                time(*since)
            )
        }
    };
    Some(Gap::new(h.what, why))
}

/// RFC 3339, seconds.
pub(crate) fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_gaps_until_the_next_complete_list() {
        let h = Health::default();
        h.register("pods", "pods");
        h.register("nodes", "node");
        assert_eq!(h.gaps().len(), 2, "syncing watchers are gaps");
        h.ready("pods");
        h.ready("nodes");
        assert!(h.gaps().is_empty());

        h.failed("pods", "403 Forbidden".into());
        h.failed("pods", "403 Forbidden again".into());
        let gaps = h.gaps();
        assert_eq!(gaps.len(), 1);
        assert_eq!(gaps[0].what, "pods");
        assert!(gaps[0].why.contains("watch failing since"), "{gaps:?}");
        assert!(gaps[0].why.contains("2 attempts"), "{gaps:?}");
        assert!(gaps[0].why.contains("403 Forbidden again"), "{gaps:?}");
        assert!(gaps[0].why.contains("data as of"), "{gaps:?}");

        h.ready("pods");
        assert!(h.gaps().is_empty());
    }
}
