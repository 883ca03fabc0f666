//! Offline bundles: `explain --bundle PATH` runs the engine on a folder of
//! `kubectl -o json` outputs and agent records, with no cluster and no
//! aggregator.

use std::path::Path;

use gpuscope_diagnose::bundle::Bundle;
use gpuscope_diagnose::{Config, PodKey};

use super::findings::{print_explained, print_idle, print_ranked};
use crate::Format;
use gpuscope_proto::client::ClientTls;

/// Reads thresholds from a JSON file (any subset of the defaults), or
/// the defaults.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    let Some(path) = path else {
        return Ok(Config::default());
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Explains the bundle's pod (or `pod` in `namespace`), or every pod in
/// the bundle when it names none.
pub fn explain_bundle(
    dir: &Path,
    pod: Option<&str>,
    namespace: Option<&str>,
    config: &Config,
    out: Format,
) -> anyhow::Result<()> {
    let b = Bundle::read(dir)?;
    let subject = match pod {
        Some(p) => Some(match p.split_once('/') {
            Some((ns, name)) => PodKey {
                namespace: ns.to_owned(),
                name: name.to_owned(),
            },
            None => PodKey {
                namespace: namespace
                    .map(str::to_owned)
                    .or_else(|| b.subject.as_ref().map(|s| s.namespace.clone()))
                    .unwrap_or_else(|| "default".to_owned()),
                name: p.to_owned(),
            },
        }),
        None => b.subject.clone(),
    };
    match subject {
        Some(s) => {
            if !b.evidence.pods.iter().any(|p| {
                gpuscope_diagnose::k8s::namespace(p) == s.namespace
                    && gpuscope_diagnose::k8s::name(p) == s.name
            }) {
                anyhow::bail!("{}: no pod {s} in the bundle", dir.display());
            }
            let findings = gpuscope_diagnose::explain(&b.evidence, config, &s);
            let mut gaps = b.evidence.gaps.clone();
            gaps.extend(gpuscope_diagnose::rule_gaps(&b.evidence, config, Some(&s)));
            print_explained(
                &format!("pod {s} (bundle {})", dir.display()),
                &findings,
                &gaps,
                &[],
                out,
            )
        }
        None => {
            let findings = gpuscope_diagnose::diagnose(&b.evidence, config);
            let mut gaps = b.evidence.gaps.clone();
            gaps.extend(gpuscope_diagnose::rule_gaps(&b.evidence, config, None));
            print_ranked(&findings, &gaps, out)
        }
    }
}

/// Which findings `diagnose` prints, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranked {
    /// Every finding, most costly first.
    All,
    /// Idle GPUs, with the GPU-hours wasted per namespace and owner.
    Idle,
}

/// `diagnose` and `idle`: from a bundle, or from the aggregator.
#[allow(clippy::too_many_arguments)]
pub async fn diagnose(
    url: &super::Target,
    (tls, anonymous): (&ClientTls, bool),
    bundle: Option<&Path>,
    namespaces: &[String],
    all_namespaces: bool,
    config: &Config,
    what: Ranked,
    out: Format,
) -> anyhow::Result<()> {
    let (findings, gaps) = match bundle {
        Some(dir) => {
            let b = Bundle::read(dir)?;
            let mut findings = gpuscope_diagnose::diagnose(&b.evidence, config);
            if !all_namespaces && !namespaces.is_empty() {
                findings.retain(|f| {
                    f.subject
                        .namespace
                        .as_ref()
                        .is_none_or(|ns| namespaces.contains(ns))
                });
            }
            let mut gaps = b.evidence.gaps.clone();
            gaps.extend(gpuscope_diagnose::rule_gaps(&b.evidence, config, None));
            (findings, gaps)
        }
        None => {
            let mut client = super::connect(url, tls, anonymous).await?;
            super::explain::diagnose_live(&mut client, namespaces, all_namespaces).await?
        }
    };
    match what {
        Ranked::All => print_ranked(&findings, &gaps, out),
        Ranked::Idle => print_idle(&findings, &gaps, out),
    }
}
