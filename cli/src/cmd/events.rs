//! `gpuscope events [-w]`.

use std::time::Duration;

use gpuscope_model::Event;
use gpuscope_model::text::{event_line, oom_line};
use gpuscope_proto::v1 as pb;

use super::{Client, IncidentJson, container_label, incident, since_nanos};
use crate::Format;

fn print(i: &IncidentJson, out: Format) -> anyhow::Result<()> {
    match out {
        Format::Json => println!("{}", serde_json::to_string(i)?),
        Format::Table => match &i.event {
            Event::OomKill(k) => println!(
                "{}  {}",
                i.node,
                oom_line(k, &container_label(i.names.as_ref(), &k.container))
            ),
            e => println!("{}  {}", i.node, event_line(e)),
        },
    }
    Ok(())
}

/// Prints recent incidents, oldest first, then (with `watch`) new ones as
/// the aggregator stores them. JSON output is one object per line.
pub async fn events(
    client: &mut Client,
    watch: bool,
    since: Duration,
    out: Format,
) -> anyhow::Result<()> {
    // Subscribe first, so nothing stored between the list and the watch
    // is missed; duplicates are dropped by (node, boot, seq).
    let mut stream = if watch {
        Some(
            client
                .watch_incidents(pb::WatchIncidentsRequest { filter: None })
                .await?
                .into_inner(),
        )
    } else {
        None
    };
    let past = client
        .list_incidents(pb::ListIncidentsRequest {
            filter: None,
            since_unix_nanos: since_nanos(since),
            until_unix_nanos: 0,
            limit: 1000,
        })
        .await?
        .into_inner();
    let mut seen = std::collections::HashSet::new();
    for i in past.incidents.into_iter().rev().filter_map(incident) {
        seen.insert((i.node.clone(), i.boot_id.clone(), i.seq));
        print(&i, out)?;
    }
    let Some(stream) = stream.as_mut() else {
        return Ok(());
    };
    while let Some(msg) = stream.message().await? {
        match msg.kind {
            Some(pb::watch_incidents_response::Kind::Incident(i)) => {
                let Some(i) = incident(i) else { continue };
                if seen.insert((i.node.clone(), i.boot_id.clone(), i.seq)) {
                    print(&i, out)?;
                }
            }
            Some(pb::watch_incidents_response::Kind::Lagged(l)) => {
                eprintln!(
                    "gpuscope: fell behind, {} incident(s) skipped (see `gpuscope events`)",
                    l.skipped
                );
            }
            None => {}
        }
    }
    Ok(())
}
