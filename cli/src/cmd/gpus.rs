//! `gpuscope gpus`.

use gpuscope_model::GpuSample;
use gpuscope_model::text::gpu_table;
use gpuscope_proto::v1 as pb;

use super::{Client, print_json};
use crate::Format;

/// Lists every GPU with its use, processes and holders.
pub async fn gpus(client: &mut Client, node: Option<String>, out: Format) -> anyhow::Result<()> {
    let node = node.unwrap_or_default();
    let gpus = super::pages(|page_token| {
        let (mut client, node_name) = (client.clone(), node.clone());
        async move {
            let page = client
                .list_gpus(pb::ListGpusRequest {
                    node_name,
                    page_token,
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok((page.gpus, page.next_page_token))
        }
    })
    .await?;
    let mut by_node: Vec<(String, Vec<GpuSample>)> = Vec::new();
    for g in gpus {
        let Some(sample) = g.latest else { continue };
        match by_node.iter_mut().find(|(n, _)| *n == g.node_name) {
            Some((_, v)) => v.push(sample.into()),
            None => by_node.push((g.node_name, vec![sample.into()])),
        }
    }
    if out == Format::Json {
        let json: Vec<serde_json::Value> = by_node
            .iter()
            .flat_map(|(node, gpus)| {
                gpus.iter().map(move |g| {
                    let mut v = serde_json::to_value(g).unwrap_or_default();
                    v["node"] = serde_json::Value::String(node.clone());
                    v
                })
            })
            .collect();
        return print_json(&json);
    }
    if by_node.is_empty() {
        println!("No GPUs reported.");
    }
    for (node, gpus) in &by_node {
        println!("node {node}");
        print!("{}", gpu_table(gpus));
    }
    Ok(())
}
