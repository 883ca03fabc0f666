//! The gRPC conventions every listener serves beside gpuscope's own
//! services: the standard health service (`grpc.health.v1.Health`,
//! tonic-health) and server reflection (`grpc.reflection.v1` and
//! `v1alpha`, tonic-reflection).
//!
//! Health is what Kubernetes' `grpc` probes, load balancers and
//! `grpc_health_probe` call. [`health_loop`] checks every
//! [`HEALTH_INTERVAL`] that the incident store answers a read and that the
//! last batch of events was committed ([`Store::check`]), and reports the
//! server (`""`), `gpuscope.v1.Ingest` and `gpuscope.v1.Query` SERVING only
//! then; once shutdown starts, NOT_SERVING, so that traffic drains before
//! the listener closes. Until the first check the status is NOT_SERVING.
//!
//! Reflection serves the `FileDescriptorSet` that `proto/build.rs` writes
//! ([`gpuscope_proto::FILE_DESCRIPTOR_SET`], comments included), so
//! `grpcurl`, `grpcui` and other generic clients list and call the query
//! API without the `.proto` files.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::store::Store;

/// How often the store is checked for the health service.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(2);

/// The services whose health is reported, besides the server's (`""`).
pub const SERVICES: [&str; 2] = ["gpuscope.v1.Ingest", "gpuscope.v1.Query"];

/// The health service and the handle that sets what it reports, with every
/// status NOT_SERVING until [`health_loop`]'s first check.
pub async fn health() -> (
    HealthReporter,
    tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
) {
    let (reporter, server) = tonic_health::server::health_reporter();
    set_all(&reporter, ServingStatus::NotServing).await;
    (reporter, server)
}

/// Sets the server's and every service's status.
pub async fn set_all(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    for s in SERVICES {
        reporter.set_service_status(s, status).await;
    }
}

/// Reports SERVING while the store answers and accepts writes, NOT_SERVING
/// otherwise (logging each change), until `shutdown`; then NOT_SERVING, and
/// the statuses are removed, which ends every `Watch` (an open watch would
/// otherwise hold the graceful shutdown until its grace ran out).
pub async fn health_loop(
    mut reporter: HealthReporter,
    store: Arc<Store>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let s = store.clone();
        let checked = tokio::task::spawn_blocking(move || s.check()).await;
        let (status, why) = match checked {
            Ok(Ok(())) => (ServingStatus::Serving, None),
            Ok(Err(e)) => (ServingStatus::NotServing, Some(e.to_string())),
            Err(e) => (ServingStatus::NotServing, Some(e.to_string())),
        };
        if last != Some(status) {
            match &why {
                Some(why) => tracing::warn!(reason = %why, "Health: NOT_SERVING."),
                None if last.is_some() => tracing::info!("Health: SERVING again."),
                None => {}
            }
            set_all(&reporter, status).await;
            last = Some(status);
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => {}
        }
    }
    set_all(&reporter, ServingStatus::NotServing).await;
    reporter.clear_service_status("").await;
    for s in SERVICES {
        reporter.clear_service_status(s).await;
    }
}

/// Server reflection (v1 and v1alpha, which older `grpcurl` builds ask)
/// over gpuscope.v1 and the health service, listing `services` (and the
/// health and reflection services).
pub fn reflection(
    services: &[&str],
) -> crate::Result<(
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
)> {
    let builder = || {
        let mut b = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(gpuscope_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health");
        for s in services {
            b = b.with_service_name(*s);
        }
        b
    };
    let v1 = builder()
        .with_service_name("grpc.reflection.v1.ServerReflection")
        .build_v1()?;
    let v1alpha = builder()
        .with_service_name("grpc.reflection.v1alpha.ServerReflection")
        .build_v1alpha()?;
    Ok((v1, v1alpha))
}
