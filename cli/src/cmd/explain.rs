//! `gpuscope explain POD`, `diagnose`, `idle` and `bundle` against a live
//! aggregator: the diagnosis engine runs there, over the Kubernetes
//! objects it watches and the agents' records; this side prints.

use std::path::Path;

use anyhow::Context as _;
use gpuscope_diagnose::wire::findings_from_wire;
use gpuscope_diagnose::{Finding, Gap};
use gpuscope_model::Timestamp;
use gpuscope_proto::v1 as pb;

use super::findings::{Recorded, print_explained};
use super::{Client, pod_ref};
use crate::Format;

/// Findings this build knows, with a gap for each it does not (a newer
/// aggregator's kinds are mentioned, not dropped silently).
pub fn known_findings(findings: Vec<pb::Finding>, gaps: Vec<pb::Gap>) -> (Vec<Finding>, Vec<Gap>) {
    let (known, unknown) = findings_from_wire(findings);
    let mut gaps: Vec<Gap> = gaps.into_iter().map(Gap::from).collect();
    gaps.extend(
        unknown
            .into_iter()
            .map(|e| Gap::new("findings", format!("{e} (upgrade gpuscope to read it)"))),
    );
    (known, gaps)
}

/// Explains one pod: every finding about it, its node and its GPUs.
pub async fn explain(
    client: &mut Client,
    pod: &str,
    namespace: Option<&str>,
    out: Format,
) -> anyhow::Result<()> {
    let (ns, name) = pod_ref(pod, namespace);
    let resp = client
        .explain(pb::ExplainRequest {
            namespace: ns.to_owned(),
            pod: name.to_owned(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner();
    let (findings, gaps) = known_findings(resp.findings, resp.gaps);
    let recorded: Vec<Recorded> = resp
        .recorded
        .into_iter()
        .map(|r| {
            let (findings, gaps) = known_findings(r.findings, r.gaps);
            Recorded {
                recorded_at: Timestamp(r.recorded_unix_nanos),
                pod_namespace: r.pod_namespace,
                pod_name: r.pod_name,
                pod_uid: r.pod_uid,
                node: r.node_name,
                seq: r.seq,
                findings,
                gaps,
            }
        })
        .collect();
    let title = match (
        findings.iter().find_map(|f| f.subject.namespace.as_deref()),
        ns,
    ) {
        (Some(found), _) => format!("pod {found}/{name}"),
        (None, "") => format!("pod {name}"),
        (None, ns) => format!("pod {ns}/{name}"),
    };
    print_explained(&title, &findings, &gaps, &recorded, out)
}

/// Writes the aggregator's evidence about a pod as an offline bundle.
pub async fn bundle(
    client: &mut Client,
    pod: &str,
    namespace: Option<&str>,
    dir: &Path,
) -> anyhow::Result<()> {
    let (ns, name) = pod_ref(pod, namespace);
    let resp = client
        .get_bundle(pb::GetBundleRequest {
            namespace: ns.to_owned(),
            pod: name.to_owned(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner();
    for f in &resp.files {
        // Names come from the server: keep them inside the folder.
        let rel = Path::new(&f.name);
        anyhow::ensure!(
            rel.components()
                .all(|c| matches!(c, std::path::Component::Normal(_))),
            "the aggregator sent a bundle file with an unsafe name: {}",
            f.name
        );
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, &f.data)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "wrote {} files to {}; read them with: gpuscope explain --bundle {}",
        resp.files.len(),
        dir.display(),
        dir.display()
    );
    Ok(())
}

/// Every finding in the namespaces asked for (all when none is given).
pub async fn diagnose_live(
    client: &mut Client,
    namespaces: &[String],
    all_namespaces: bool,
) -> anyhow::Result<(Vec<Finding>, Vec<Gap>)> {
    let resp = client
        .diagnose(pb::DiagnoseRequest {
            namespaces: namespaces.to_vec(),
            all_namespaces: all_namespaces || namespaces.is_empty(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner();
    Ok(known_findings(resp.findings, resp.gaps))
}
