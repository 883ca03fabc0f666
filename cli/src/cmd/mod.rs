//! The subcommands, one file each, over the aggregator's query service.

mod bundle;
mod events;
mod explain;
mod findings;
mod gpus;
mod nodes;
mod oom;
mod pods;

pub use bundle::{Ranked, diagnose, explain_bundle, load_config};
pub use events::events;
pub use explain::{bundle, explain};
pub use gpus::gpus;
pub use nodes::nodes;
pub use oom::oom;
pub use pods::pods;

use anyhow::Context;
use gpuscope_agent::model::{Event, Timestamp};
use gpuscope_agent::ship::endpoint::{ClientTls, endpoint};
use gpuscope_agent::wire::event_from_wire;
use gpuscope_proto::v1 as pb;
use gpuscope_proto::v1::query_client::QueryClient;
use tonic::transport::Channel;

/// The aggregator's query client.
pub type Client = QueryClient<Channel>;

/// Connects to the aggregator.
pub async fn connect(url: &str, tls: &ClientTls) -> anyhow::Result<Client> {
    let channel = endpoint(url, tls)?.connect().await.with_context(|| {
        format!("cannot reach the aggregator at {url} (set --aggregator or GPUSCOPE_AGGREGATOR)")
    })?;
    Ok(QueryClient::new(channel).max_decoding_message_size(64 << 20))
}

/// One incident as the CLI prints it in JSON: where it came from and the
/// event in the agent's own JSON shape.
#[derive(serde::Serialize)]
pub struct IncidentJson {
    /// Node name.
    pub node: String,
    /// Boot of the node.
    pub boot_id: String,
    /// Sequence number within that boot.
    pub seq: u64,
    /// When the aggregator stored it.
    pub received: Timestamp,
    /// The event (`kind` and its fields).
    #[serde(flatten)]
    pub event: Event,
}

/// Converts a wire incident; `None` for an event kind this CLI does not
/// know.
pub fn incident(i: pb::Incident) -> Option<IncidentJson> {
    let event = i.event?;
    let seq = event.seq;
    Some(IncidentJson {
        node: i.node_name,
        boot_id: i.boot_id,
        seq,
        received: Timestamp(i.received_unix_nanos),
        event: event_from_wire(event)?,
    })
}

/// Prints `value` as pretty JSON.
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `since` as Unix nanoseconds before now.
pub fn since_nanos(since: std::time::Duration) -> u64 {
    Timestamp::now().saturating_sub(since).as_nanos()
}
