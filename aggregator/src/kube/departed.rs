//! Pods Kubernetes has deleted, as the watch's `DELETED` event last
//! showed them: a finished Job's pod is garbage-collected minutes (or,
//! with `ttlSecondsAfterFinished: 0`, moments) after it failed, and the
//! reflector forgets it at once, but "why did my run die?" is asked after.
//! The final object carries the last status the kubelet reported (the
//! terminated state, reason and exit code). Bounded by age and count.
//! Kept as the watch keeps live pods, projected ([`PodView`]): the same
//! fields the rules read, a few hundred bytes each.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::project::PodView;

/// How long a deleted pod is kept.
pub const DEPARTED_TTL: Duration = Duration::from_secs(3600);
/// Deleted pods kept at most (the oldest go first): 2.5-3.4 MB of
/// projections (1.3-1.7 kB each for pod objects of 6.5-8.6 kB of JSON,
/// which took 15-24 kB each as `k8s-openapi` objects; measured with
/// `benches/src/bin/departed_mem.rs` on two real pods). A pod deleted
/// after more than this many others within the hour is answered by its
/// recorded diagnosis instead.
pub const DEPARTED_MAX: usize = 2_000;

/// Deleted pods, oldest first.
#[derive(Debug)]
pub struct Departed {
    ttl: Duration,
    max: usize,
    pods: VecDeque<(Instant, Arc<PodView>)>,
}

impl Default for Departed {
    fn default() -> Self {
        Self::new(DEPARTED_TTL, DEPARTED_MAX)
    }
}

impl Departed {
    /// Keeps deleted pods for `ttl`, at most `max`.
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max,
            pods: VecDeque::new(),
        }
    }

    /// Remembers a pod the watch saw deleted.
    pub fn push(&mut self, pod: Arc<PodView>) {
        self.push_at(pod, Instant::now());
    }

    /// The most recently deleted pod matching `pred`, within the TTL.
    pub fn find(&self, pred: impl FnMut(&PodView) -> bool) -> Option<Arc<PodView>> {
        self.find_at(pred, Instant::now())
    }

    /// [`Departed::push`] with the clock read by the caller.
    fn push_at(&mut self, pod: Arc<PodView>, now: Instant) {
        self.expire(now);
        if self.max == 0 {
            return;
        }
        if self.pods.len() == self.max {
            self.pods.pop_front();
        }
        self.pods.push_back((now, pod));
    }

    /// [`Departed::find`] with the clock read by the caller.
    fn find_at(
        &self,
        mut pred: impl FnMut(&PodView) -> bool,
        now: Instant,
    ) -> Option<Arc<PodView>> {
        self.pods
            .iter()
            .rev()
            .take_while(|(at, _)| now.duration_since(*at) < self.ttl)
            .find(|(_, p)| pred(p))
            .map(|(_, p)| p.clone())
    }

    /// Number of pods kept.
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        while self
            .pods
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) >= self.ttl)
        {
            self.pods.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::Projection;
    use k8s_openapi::api::core::v1::Pod;

    fn pod_uid(name: &str, uid: Option<&str>) -> Arc<PodView> {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.uid = uid.map(Into::into);
        Arc::new(PodView::project(&p, &[]).expect("projects"))
    }

    fn pod(name: &str) -> Arc<PodView> {
        pod_uid(name, None)
    }

    fn named(d: &Departed, name: &str) -> bool {
        d.find(|p| p.name() == name).is_some()
    }

    #[test]
    fn keeps_the_newest_within_count_and_age() {
        let mut d = Departed::new(Duration::from_secs(3600), 2);
        d.push(pod("a"));
        d.push(pod("b"));
        d.push(pod("c"));
        assert_eq!(d.len(), 2);
        assert!(!named(&d, "a") && named(&d, "b") && named(&d, "c"));

        // Age on a clock the test moves: a minute's TTL, pods pushed at
        // t0 and t0 + 61 s, looked up just before and after t0 + 60 s.
        let ttl = Duration::from_secs(60);
        let mut d = Departed::new(ttl, 10);
        let t0 = Instant::now();
        let named_at =
            |d: &Departed, name: &str, at: Instant| d.find_at(|p| p.name() == name, at).is_some();
        d.push_at(pod("old"), t0);
        assert!(named_at(&d, "old", t0 + ttl - Duration::from_millis(1)));
        assert!(!named_at(&d, "old", t0 + ttl), "expired pods are not found");
        assert_eq!(d.len(), 1, "kept until the next push");
        let t1 = t0 + ttl + Duration::from_secs(1);
        d.push_at(pod("new"), t1);
        assert_eq!(d.len(), 1, "expired pods are dropped on the next push");
        assert!(named_at(&d, "new", t1 + ttl - Duration::from_millis(1)));
        assert!(!named_at(&d, "old", t1));
    }

    #[test]
    fn the_most_recent_deletion_of_a_name_wins() {
        let mut d = Departed::default();
        d.push(pod_uid("trainer-0", Some("u1")));
        d.push(pod_uid("trainer-0", Some("u2")));
        let found = d
            .find(|p| p.name() == "trainer-0")
            .and_then(|p| p.uid().map(str::to_owned));
        assert_eq!(found.as_deref(), Some("u2"));
    }
}
