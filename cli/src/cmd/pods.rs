//! `gpuscope pods`.

use gpuscope_model::ContainerSample;
use gpuscope_model::text::{human_bytes, opt_bytes, percent, table};
use gpuscope_proto::v1 as pb;

use super::{Client, KubeNames, container_label, print_json};
use crate::Format;

/// Lists containers with memory, limit and OOM kills.
pub async fn pods(client: &mut Client, node: Option<String>, out: Format) -> anyhow::Result<()> {
    let node = node.unwrap_or_default();
    let containers = super::pages(|page_token| {
        let (mut client, node_name) = (client.clone(), node.clone());
        async move {
            let page = client
                .list_containers(pb::ListContainersRequest {
                    node_name,
                    page_token,
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok((page.containers, page.next_page_token))
        }
    })
    .await?;
    let mut list: Vec<Row> = containers
        .into_iter()
        .filter_map(|c| {
            Some(Row {
                names: KubeNames::from_wire(c.pod_namespace, c.pod_name, c.container_name),
                node: c.node_name,
                sample: c.latest?.into(),
            })
        })
        .collect();
    list.sort_by(|a, b| {
        (&a.node, &a.sample.container.cgroup_path).cmp(&(&b.node, &b.sample.container.cgroup_path))
    });
    if out == Format::Json {
        // Through a Value: keys sorted, as every JSON output prints them.
        return print_json(&serde_json::to_value(&list)?);
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
    for Row {
        node,
        names,
        sample: s,
    } in &list
    {
        let m = &s.memory;
        rows.push(vec![
            node.clone(),
            container_label(names.as_ref(), &s.container),
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

/// One container as `pods` prints it.
#[derive(serde::Serialize)]
struct Row {
    node: String,
    #[serde(flatten)]
    names: Option<KubeNames>,
    #[serde(flatten)]
    sample: ContainerSample,
}
