//! `gpuscope pods`.

use gpuscope_agent::model::ContainerSample;
use gpuscope_agent::output::{human_bytes, opt_bytes, percent, short_name, table};
use gpuscope_proto::v1 as pb;

use super::{Client, print_json};
use crate::Format;

/// Lists containers with memory, limit and OOM kills.
pub async fn pods(client: &mut Client, node: Option<String>, out: Format) -> anyhow::Result<()> {
    let containers = client
        .list_containers(pb::ListContainersRequest {
            node_name: node.unwrap_or_default(),
            pod_uid: String::new(),
        })
        .await?
        .into_inner()
        .containers;
    let mut list: Vec<(String, ContainerSample)> = containers
        .into_iter()
        .filter_map(|c| Some((c.node_name, c.latest?.into())))
        .collect();
    list.sort_by(|a, b| {
        (&a.0, &a.1.container.cgroup_path).cmp(&(&b.0, &b.1.container.cgroup_path))
    });
    if out == Format::Json {
        let json: Vec<serde_json::Value> = list
            .iter()
            .map(|(node, s)| {
                let mut v = serde_json::to_value(s).unwrap_or_default();
                v["node"] = serde_json::Value::String(node.clone());
                v
            })
            .collect();
        return print_json(&json);
    }
    let mut rows = vec![
        [
            "NODE",
            "POD/CONTAINER",
            "MEMORY",
            "LIMIT",
            "USE",
            "PEAK",
            "OOM_KILLS",
            "MEM_PRESSURE_10S",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for (node, s) in &list {
        let m = &s.memory;
        rows.push(vec![
            node.clone(),
            short_name(&s.container),
            human_bytes(m.usage_bytes),
            opt_bytes(m.limit_bytes),
            percent(m.usage_bytes, m.limit_bytes),
            opt_bytes(m.peak_bytes),
            m.events.oom_kill.to_string(),
            s.pressure
                .memory
                .map_or_else(|| "-".to_owned(), |p| format!("{:.2}%", p.some.avg10)),
        ]);
    }
    print!("{}", table(&rows));
    Ok(())
}
