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
    // (node, the pod's namespace/name/container when the aggregator
    // knows the pod object, the sample)
    let mut list: Vec<(String, Option<[String; 3]>, ContainerSample)> = containers
        .into_iter()
        .filter_map(|c| {
            let names =
                (!c.pod_name.is_empty()).then_some([c.pod_namespace, c.pod_name, c.container_name]);
            Some((c.node_name, names, c.latest?.into()))
        })
        .collect();
    list.sort_by(|a, b| {
        (&a.0, &a.2.container.cgroup_path).cmp(&(&b.0, &b.2.container.cgroup_path))
    });
    if out == Format::Json {
        let json: Vec<serde_json::Value> = list
            .iter()
            .map(|(node, names, s)| {
                let mut v = serde_json::to_value(s).unwrap_or_default();
                v["node"] = serde_json::Value::String(node.clone());
                if let Some([ns, pod, container]) = names {
                    v["pod_namespace"] = ns.clone().into();
                    v["pod_name"] = pod.clone().into();
                    v["container_name"] = container.clone().into();
                }
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
    for (node, names, s) in &list {
        let m = &s.memory;
        rows.push(vec![
            node.clone(),
            match names {
                Some([ns, pod, c]) if !c.is_empty() => format!("{ns}/{pod}/{c}"),
                Some([ns, pod, _]) => {
                    let id = s.container.container_id.as_deref().unwrap_or("?");
                    format!("{ns}/{pod}/{}", &id[..id.len().min(12)])
                }
                None => short_name(&s.container),
            },
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
