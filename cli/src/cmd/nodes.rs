//! `gpuscope nodes`.

use gpuscope_model::Timestamp;
use gpuscope_model::text::{human_bytes, table};
use gpuscope_proto::v1 as pb;

use super::{Client, print_json};
use crate::Format;
use crate::render::ago;

/// Lists the nodes whose agents report.
pub async fn nodes(client: &mut Client, out: Format) -> anyhow::Result<()> {
    let answer = client
        .list_nodes(pb::ListNodesRequest {})
        .await?
        .into_inner();
    // On stderr, in either format: said loudly, and JSON stays a list.
    for notice in &answer.notices {
        eprintln!("WARNING: the aggregator says: {notice}");
    }
    let nodes = answer.nodes;
    if out == Format::Json {
        let json: Vec<serde_json::Value> = nodes
            .iter()
            .map(|n| {
                let id = n.identity.clone().unwrap_or_default();
                serde_json::json!({
                    "node": id.node_name,
                    "boot_id": id.boot_id,
                    "kernel_release": id.kernel_release,
                    "agent_version": id.agent_version,
                    "connected": n.connected,
                    "last_seen": Timestamp(n.last_seen_unix_nanos),
                    "mem_total_bytes": n.latest.as_ref().map(|s| s.mem_total_bytes),
                    "mem_available_bytes": n.latest.as_ref().map(|s| s.mem_available_bytes),
                    "containers": n.containers,
                    "gpus": n.gpus,
                    "dropped_samples": n.dropped_samples,
                })
            })
            .collect();
        return print_json(&json);
    }
    let mut rows = vec![
        [
            "NODE",
            "CONNECTED",
            "LAST_SEEN",
            "KERNEL",
            "MEM_AVAILABLE",
            "CONTAINERS",
            "GPUS",
            "DROPPED",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for n in &nodes {
        let id = n.identity.clone().unwrap_or_default();
        rows.push(vec![
            id.node_name,
            if n.connected { "yes" } else { "no" }.to_owned(),
            ago(Timestamp(n.last_seen_unix_nanos)),
            id.kernel_release,
            n.latest.as_ref().map_or_else(
                || "-".to_owned(),
                |s| {
                    format!(
                        "{} of {}",
                        human_bytes(s.mem_available_bytes),
                        human_bytes(s.mem_total_bytes)
                    )
                },
            ),
            n.containers.to_string(),
            n.gpus.to_string(),
            n.dropped_samples.to_string(),
        ]);
    }
    print!("{}", table(&rows));
    Ok(())
}
