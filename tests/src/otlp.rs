//! An OpenTelemetry collector's OTLP/gRPC receiver for the tests, built
//! from the official protocol definitions (the `opentelemetry-proto`
//! crate's generated messages and tonic servers for `MetricsService` and
//! `LogsService`): it decodes every request gpuscope sends, keeps it with
//! its metadata (headers), and flattens it into data points and log
//! records to assert on. It can also be told to never answer (a collector
//! that accepts connections and hangs).
//!
//! No OpenTelemetry Collector binary is needed.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use tonic::metadata::MetadataMap;

/// An attribute's value, as the test compares it.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A double.
    Double(f64),
    /// A boolean.
    Bool(bool),
    /// A list.
    List(Vec<Attr>),
    /// Anything else.
    Other,
}

impl Attr {
    /// The string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Attr::Str(s) => Some(s),
            _ => None,
        }
    }
}

fn attr(v: Option<&AnyValue>) -> Attr {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => Attr::Str(s.clone()),
        Some(any_value::Value::IntValue(i)) => Attr::Int(*i),
        Some(any_value::Value::DoubleValue(d)) => Attr::Double(*d),
        Some(any_value::Value::BoolValue(b)) => Attr::Bool(*b),
        Some(any_value::Value::ArrayValue(a)) => {
            Attr::List(a.values.iter().map(|v| attr(Some(v))).collect())
        }
        _ => Attr::Other,
    }
}

/// Attributes by key.
pub type Attrs = BTreeMap<String, Attr>;

fn attrs(kvs: &[KeyValue]) -> Attrs {
    kvs.iter()
        .map(|kv| (kv.key.clone(), attr(kv.value.as_ref())))
        .collect()
}

/// How a metric's points were sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A gauge.
    Gauge,
    /// A monotonic sum (counter).
    Counter,
    /// A non-monotonic sum (up-down counter).
    UpDownCounter,
    /// Anything else.
    Other,
}

/// One data point, with what it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The resource's attributes.
    pub resource: Attrs,
    /// The instrumentation scope's name.
    pub scope: String,
    /// The metric's name.
    pub name: String,
    /// Its unit.
    pub unit: String,
    /// Its kind.
    pub kind: MetricKind,
    /// The point's attributes.
    pub attributes: Attrs,
    /// Its value.
    pub value: f64,
    /// Whether the value was sent as an integer.
    pub int: bool,
}

/// One log record, with what it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    /// The resource's attributes.
    pub resource: Attrs,
    /// The instrumentation scope's name.
    pub scope: String,
    /// The event name.
    pub event_name: String,
    /// The severity number.
    pub severity_number: i32,
    /// The severity text.
    pub severity_text: String,
    /// The body (text).
    pub body: String,
    /// The record's attributes.
    pub attributes: Attrs,
    /// When it happened, Unix nanoseconds.
    pub time_unix_nano: u64,
    /// When it was observed, Unix nanoseconds.
    pub observed_time_unix_nano: u64,
}

#[derive(Debug, Default)]
struct Received {
    metrics: Vec<(MetadataMap, ExportMetricsServiceRequest)>,
    logs: Vec<(MetadataMap, ExportLogsServiceRequest)>,
}

#[derive(Clone, Default)]
struct Service {
    got: Arc<Mutex<Received>>,
    hang: Arc<AtomicBool>,
}

impl Service {
    async fn wait_if_hanging(&self) {
        if self.hang.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    }
}

#[tonic::async_trait]
impl MetricsService for Service {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let (meta, _, req) = request.into_parts();
        self.got.lock().unwrap().metrics.push((meta, req));
        self.wait_if_hanging().await;
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Service {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let (meta, _, req) = request.into_parts();
        self.got.lock().unwrap().logs.push((meta, req));
        self.wait_if_hanging().await;
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// A running receiver on a loopback port, on a thread and runtime of its
/// own; stops when dropped.
pub struct Receiver {
    /// Its address.
    pub addr: SocketAddr,
    service: Service,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Receiver {
    /// Starts a receiver that answers every export at once.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// Starts a receiver that keeps every request and never answers.
    pub fn hanging() -> Self {
        Self::start_with(true)
    }

    /// Starts a receiver serving TLS with this certificate and key (PEM),
    /// requiring client certificates signed by `client_ca`.
    pub fn start_tls(cert: Vec<u8>, key: Vec<u8>, client_ca: Vec<u8>) -> Self {
        let tls = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(cert, key))
            .client_ca_root(tonic::transport::Certificate::from_pem(client_ca));
        Self::start_with_tls(false, Some(tls))
    }

    fn start_with(hang: bool) -> Self {
        Self::start_with_tls(hang, None)
    }

    fn start_with_tls(hang: bool, tls: Option<tonic::transport::ServerTlsConfig>) -> Self {
        let service = Service::default();
        service.hang.store(hang, Ordering::Relaxed);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let svc = service.clone();
        std::thread::Builder::new()
            .name("otlp-receiver".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    let incoming = tonic::transport::server::TcpIncoming::from(listener);
                    let mut server = tonic::transport::Server::builder();
                    if let Some(tls) = tls {
                        server = server.tls_config(tls).unwrap();
                    }
                    let _ = server
                        .add_service(
                            MetricsServiceServer::new(svc.clone())
                                .max_decoding_message_size(256 << 20),
                        )
                        .add_service(LogsServiceServer::new(svc))
                        .serve_with_incoming_shutdown(incoming, async {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })
            .unwrap();
        Receiver {
            addr,
            service,
            stop: Some(stop),
        }
    }

    /// Its URL, for `--otlp-endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its URL when it serves TLS (`localhost`, the name its certificate
    /// has).
    pub fn tls_endpoint(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// Metric export requests received so far.
    pub fn metric_requests(&self) -> usize {
        self.service.got.lock().unwrap().metrics.len()
    }

    /// Log export requests received so far.
    pub fn log_requests(&self) -> usize {
        self.service.got.lock().unwrap().logs.len()
    }

    /// The metadata (headers) of every request received so far.
    pub fn metadata(&self) -> Vec<MetadataMap> {
        let got = self.service.got.lock().unwrap();
        got.metrics
            .iter()
            .map(|(m, _)| m.clone())
            .chain(got.logs.iter().map(|(m, _)| m.clone()))
            .collect()
    }

    /// The points of the latest metrics export request.
    pub fn latest_points(&self) -> Vec<Point> {
        let got = self.service.got.lock().unwrap();
        got.metrics
            .last()
            .map(|(_, r)| points(r))
            .unwrap_or_default()
    }

    /// Every point of every metrics export request so far.
    pub fn points(&self) -> Vec<Point> {
        let got = self.service.got.lock().unwrap();
        got.metrics.iter().flat_map(|(_, r)| points(r)).collect()
    }

    /// Every log record received so far.
    pub fn logs(&self) -> Vec<Log> {
        let got = self.service.got.lock().unwrap();
        got.logs.iter().flat_map(|(_, r)| logs(r)).collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A metrics request's points, flattened.
pub fn points(r: &ExportMetricsServiceRequest) -> Vec<Point> {
    let mut out = Vec::new();
    for rm in &r.resource_metrics {
        let resource = attrs(rm.resource.as_ref().map_or(&[][..], |r| &r.attributes));
        for sm in &rm.scope_metrics {
            let scope = sm.scope.as_ref().map_or(String::new(), |s| s.name.clone());
            for m in &sm.metrics {
                let (kind, dps) = match &m.data {
                    Some(metric::Data::Gauge(g)) => (MetricKind::Gauge, &g.data_points),
                    Some(metric::Data::Sum(s)) if s.is_monotonic => {
                        (MetricKind::Counter, &s.data_points)
                    }
                    Some(metric::Data::Sum(s)) => (MetricKind::UpDownCounter, &s.data_points),
                    _ => {
                        out.push(Point {
                            resource: resource.clone(),
                            scope: scope.clone(),
                            name: m.name.clone(),
                            unit: m.unit.clone(),
                            kind: MetricKind::Other,
                            attributes: Attrs::new(),
                            value: f64::NAN,
                            int: false,
                        });
                        continue;
                    }
                };
                for dp in dps {
                    let (value, int) = match dp.value {
                        Some(number_data_point::Value::AsInt(i)) => (i as f64, true),
                        Some(number_data_point::Value::AsDouble(d)) => (d, false),
                        None => (f64::NAN, false),
                    };
                    out.push(Point {
                        resource: resource.clone(),
                        scope: scope.clone(),
                        name: m.name.clone(),
                        unit: m.unit.clone(),
                        kind,
                        attributes: attrs(&dp.attributes),
                        value,
                        int,
                    });
                }
            }
        }
    }
    out
}

/// A logs request's records, flattened.
pub fn logs(r: &ExportLogsServiceRequest) -> Vec<Log> {
    let mut out = Vec::new();
    for rl in &r.resource_logs {
        let resource = attrs(rl.resource.as_ref().map_or(&[][..], |r| &r.attributes));
        for sl in &rl.scope_logs {
            let scope = sl.scope.as_ref().map_or(String::new(), |s| s.name.clone());
            for l in &sl.log_records {
                out.push(Log {
                    resource: resource.clone(),
                    scope: scope.clone(),
                    event_name: l.event_name.clone(),
                    severity_number: l.severity_number,
                    severity_text: l.severity_text.clone(),
                    body: attr(l.body.as_ref())
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    attributes: attrs(&l.attributes),
                    time_unix_nano: l.time_unix_nano,
                    observed_time_unix_nano: l.observed_time_unix_nano,
                });
            }
        }
    }
    out
}
