//! `gpuscope oom`.

use std::time::Duration;

use gpuscope_model::Event;
use gpuscope_model::text::{human_bytes, name, opt_bytes, table};
use gpuscope_proto::v1 as pb;

use super::{Client, container_label, incident, pod_ref, print_json, since_nanos};
use crate::Format;
use crate::render::ago;

/// Lists OOM kills, newest first.
pub async fn oom(
    client: &mut Client,
    since: Option<Duration>,
    node: Option<String>,
    pod: Option<&str>,
    namespace: Option<&str>,
    out: Format,
) -> anyhow::Result<()> {
    let mut filter = pb::IncidentFilter {
        node_name: node.unwrap_or_default(),
        kinds: vec![pb::IncidentKind::OomKill as i32],
        ..Default::default()
    };
    match pod {
        Some(uid) if is_uid(uid) && namespace.is_none() => filter.pod_uid = uid.to_owned(),
        Some(pod) => {
            let (ns, name) = pod_ref(pod, namespace);
            filter.pod_namespace = ns.to_owned();
            filter.pod_name = name.to_owned();
        }
        None => {}
    }
    let response = client
        .list_incidents(pb::ListIncidentsRequest {
            filter: Some(filter),
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

/// Whether `s` has a UID's shape (8-4-4-4-12 hexadecimal digits), as
/// Kubernetes gives pods; a pod's name could have it too, which `-n` or
/// `namespace/name` says.
fn is_uid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::is_uid;

    #[test]
    fn uids_are_told_from_names() {
        assert!(is_uid("7c1e4b2a-9d3f-4e8a-b6c5-2f1a0e9d8c7b"));
        assert!(!is_uid("trainer-0"));
        assert!(!is_uid("7c1e4b2a-9d3f-4e8a-b6c5-2f1a0e9d8c7"));
        assert!(!is_uid("7c1e4b2a-9d3f-4e8a-b6c5_2f1a0e9d8c7b"));
        assert!(!is_uid("7c1e4b2a-9d3f-4e8a-b6c5-2f1a0e9d8c7g"));
    }
}
