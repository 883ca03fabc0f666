//! `gpuscope oom`.

use std::time::Duration;

use gpuscope_agent::model::Event;
use gpuscope_agent::output::{human_bytes, name, opt_bytes, table};
use gpuscope_proto::v1 as pb;

use super::{Client, container_label, incident, print_json, since_nanos};
use crate::Format;
use crate::render::ago;

/// Lists OOM kills, newest first.
pub async fn oom(
    client: &mut Client,
    since: Option<Duration>,
    node: Option<String>,
    pod: Option<String>,
    out: Format,
) -> anyhow::Result<()> {
    let response = client
        .list_incidents(pb::ListIncidentsRequest {
            filter: Some(pb::IncidentFilter {
                node_name: node.unwrap_or_default(),
                pod_uid: pod.unwrap_or_default(),
                kinds: vec![pb::IncidentKind::OomKill as i32],
            }),
            since_unix_nanos: since.map_or(0, since_nanos),
            until_unix_nanos: 0,
            limit: 1000,
        })
        .await?
        .into_inner();
    let incidents: Vec<_> = response
        .incidents
        .into_iter()
        .filter_map(incident)
        .collect();
    if out == Format::Json {
        return print_json(&serde_json::json!({ "incidents": incidents }));
    }
    let mut rows = vec![
        [
            "TIME",
            "NODE",
            "POD/CONTAINER",
            "VICTIM",
            "ANON_RSS",
            "LIMIT",
            "CONSTRAINT",
            "SEEN_BY",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for i in &incidents {
        let Event::OomKill(k) = &i.event else {
            continue;
        };
        rows.push(vec![
            ago(k.time),
            i.node.clone(),
            container_label(i.names.as_ref(), &k.container),
            k.victim
                .as_ref()
                .map_or_else(|| "?".to_owned(), |v| format!("{} ({})", v.comm, v.pid)),
            k.victim
                .as_ref()
                .map_or_else(|| "-".to_owned(), |v| human_bytes(v.anon_rss_bytes)),
            opt_bytes(k.limit_bytes.or(k.kernel_limit_bytes)),
            name(k.constraint),
            name(k.detected_by),
        ]);
    }
    print!("{}", table(&rows));
    if response.truncated {
        println!("(more: narrow with --since, --node or --pod)");
    }
    Ok(())
}
