//! Findings and gaps to and from the `gpuscope.v1` wire messages: the one
//! place where the engine's types and the query API meet.
//!
//! `kind` and `confidence` travel as their snake_case names ([`Kind::as_str`],
//! the JSON names). Compatibility with a newer aggregator:
//! - a `kind` this build does not know makes [`Finding::try_from`] fail with
//!   [`WireError::UnknownKind`], which keeps the name and the summary, so a
//!   client can still show the sentence (and [`findings_from_wire`] keeps
//!   every finding it knows and returns the others separately);
//! - an unknown `confidence` is read as [`Confidence::Low`]: the finding is
//!   kept, and a level this build cannot rank is not trusted more than the
//!   lowest.

use gpuscope_model::Timestamp;
use gpuscope_proto::v1 as pb;

use crate::evidence::Gap;
use crate::finding::{Confidence, Cost, Fact, Finding, Kind, Subject};

/// A wire finding this build cannot represent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WireError {
    /// The kind is not one this build knows (a newer aggregator).
    #[error("unknown finding kind {kind:?} (a newer aggregator?): {summary}")]
    UnknownKind {
        /// The kind as sent.
        kind: String,
        /// The finding's sentence, still worth showing.
        summary: String,
    },
}

/// The stable name of a confidence level (the JSON name).
pub fn confidence_str(c: Confidence) -> &'static str {
    match c {
        Confidence::Low => "low",
        Confidence::Medium => "medium",
        Confidence::High => "high",
    }
}

/// A kind by its stable name.
pub fn kind_from_str(s: &str) -> Option<Kind> {
    Kind::ALL.iter().copied().find(|k| k.as_str() == s)
}

/// A confidence level by its stable name.
pub fn confidence_from_str(s: &str) -> Option<Confidence> {
    match s {
        "low" => Some(Confidence::Low),
        "medium" => Some(Confidence::Medium),
        "high" => Some(Confidence::High),
        _ => None,
    }
}

impl From<&Subject> for pb::Subject {
    fn from(s: &Subject) -> Self {
        Self {
            namespace: s.namespace.clone(),
            pod: s.pod.clone(),
            container: s.container.clone(),
            node: s.node.clone(),
            gpu: s.gpu.clone(),
            owner: s.owner.clone(),
        }
    }
}

impl From<pb::Subject> for Subject {
    fn from(s: pb::Subject) -> Self {
        Self {
            namespace: s.namespace,
            pod: s.pod,
            container: s.container,
            node: s.node,
            gpu: s.gpu,
            owner: s.owner,
        }
    }
}

impl From<&Fact> for pb::Fact {
    fn from(f: &Fact) -> Self {
        Self {
            name: f.name.clone(),
            value: f.value.clone(),
            time_unix_nanos: f.time.map(Timestamp::as_nanos),
        }
    }
}

impl From<pb::Fact> for Fact {
    fn from(f: pb::Fact) -> Self {
        Self {
            name: f.name,
            value: f.value,
            time: f.time_unix_nanos.map(Timestamp),
        }
    }
}

impl From<Cost> for pb::Cost {
    fn from(c: Cost) -> Self {
        Self {
            gpu_hours: c.gpu_hours,
            restarts: c.restarts,
        }
    }
}

impl From<pb::Cost> for Cost {
    fn from(c: pb::Cost) -> Self {
        Self {
            gpu_hours: c.gpu_hours,
            restarts: c.restarts,
        }
    }
}

impl From<&Finding> for pb::Finding {
    fn from(f: &Finding) -> Self {
        Self {
            kind: f.kind.as_str().to_owned(),
            summary: f.summary.clone(),
            confidence: confidence_str(f.confidence).to_owned(),
            subject: Some((&f.subject).into()),
            evidence: f.evidence.iter().map(Into::into).collect(),
            next_steps: f.next_steps.clone(),
            cost: f.cost.map(Into::into),
            id: f.id.clone(),
            caused_by: f.caused_by.clone(),
        }
    }
}

impl TryFrom<pb::Finding> for Finding {
    type Error = WireError;

    fn try_from(f: pb::Finding) -> Result<Self, WireError> {
        let Some(kind) = kind_from_str(&f.kind) else {
            return Err(WireError::UnknownKind {
                kind: f.kind,
                summary: f.summary,
            });
        };
        Ok(Self {
            id: f.id,
            kind,
            subject: f.subject.map(Into::into).unwrap_or_default(),
            summary: f.summary,
            confidence: confidence_from_str(&f.confidence).unwrap_or(Confidence::Low),
            evidence: f.evidence.into_iter().map(Into::into).collect(),
            next_steps: f.next_steps,
            cost: f.cost.map(Into::into),
            caused_by: f.caused_by,
        })
    }
}

/// Every wire finding this build knows, in order, and the errors of those
/// it does not (to be mentioned, not to fail on).
pub fn findings_from_wire(findings: Vec<pb::Finding>) -> (Vec<Finding>, Vec<WireError>) {
    let mut known = Vec::with_capacity(findings.len());
    let mut unknown = Vec::new();
    for f in findings {
        match Finding::try_from(f) {
            Ok(f) => known.push(f),
            Err(e) => unknown.push(e),
        }
    }
    (known, unknown)
}

impl From<&Gap> for pb::Gap {
    fn from(g: &Gap) -> Self {
        Self {
            what: g.what.clone(),
            why: g.why.clone(),
        }
    }
}

impl From<pb::Gap> for Gap {
    fn from(g: pb::Gap) -> Self {
        Self {
            what: g.what,
            why: g.why,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(kind: Kind) -> Finding {
        Finding::new(
            kind,
            Subject {
                namespace: Some("ml".into()),
                pod: Some("trainer-0".into()),
                container: Some("main".into()),
                node: Some("gpu-1".into()),
                gpu: None,
                owner: Some("Job/train".into()),
            },
            Confidence::Medium,
            "The container keeps crashing.",
        )
        .fact(Fact::at(
            "exit code",
            "1",
            Timestamp(1_764_150_000_000_000_000),
        ))
        .fact(Fact::new("restarts", "7"))
        .step("kubectl logs -n ml trainer-0 --previous")
    }

    #[test]
    fn every_kind_round_trips() {
        for kind in Kind::ALL {
            let mut f = finding(kind);
            f.id = format!("{kind}:ml/trainer-0:main");
            f.caused_by = vec!["probe_failing:ml/trainer-0:main".into()];
            f.cost = Some(Cost {
                gpu_hours: 1.5,
                restarts: 7,
            });
            let wire = pb::Finding::from(&f);
            assert_eq!(wire.kind, kind.as_str());
            assert_eq!(wire.confidence, "medium");
            assert_eq!(Finding::try_from(wire), Ok(f));
        }
    }

    #[test]
    fn confidence_names_are_the_json_names() {
        for c in [Confidence::Low, Confidence::Medium, Confidence::High] {
            assert_eq!(serde_json::to_value(c).ok(), Some(confidence_str(c).into()));
            assert_eq!(confidence_from_str(confidence_str(c)), Some(c));
        }
    }

    #[test]
    fn a_newer_servers_vocabulary_does_not_fail_the_rest() {
        let mut newer = pb::Finding::from(&finding(Kind::CrashLoop));
        newer.kind = "quantum_decoherence".into();
        let mut odd_confidence = pb::Finding::from(&finding(Kind::GpuIdle));
        odd_confidence.confidence = "certain".into();
        let (known, unknown) = findings_from_wire(vec![newer, odd_confidence]);
        assert_eq!(known.len(), 1);
        assert_eq!(known[0].kind, Kind::GpuIdle);
        assert_eq!(known[0].confidence, Confidence::Low);
        assert_eq!(
            unknown,
            vec![WireError::UnknownKind {
                kind: "quantum_decoherence".into(),
                summary: "The container keeps crashing.".into()
            }]
        );
    }

    #[test]
    fn gaps_round_trip() {
        let g = Gap::new("pods", "watch failing since 12:03:04: 403 Forbidden");
        assert_eq!(Gap::from(pb::Gap::from(&g)), g);
    }
}
