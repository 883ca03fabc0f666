//! `gpuscope-agent`: the per-node agent binary.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use gpuscope_agent::cli::{Cli, Command, LogFormat, SnapshotFormat, WatchFormat};
use gpuscope_agent::health::{self, Health};
use gpuscope_agent::output;
use gpuscope_agent::runtime::{self, Output};
use gpuscope_agent::ship::stream::{self, ShipConfig, Shipper};
use gpuscope_model::Tagged;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log);
    let stdout = std::io::stdout();
    match cli.command {
        Command::Snapshot { collect, output } => {
            let snap = runtime::snapshot(&collect.config());
            let mut out = stdout.lock();
            match output {
                SnapshotFormat::Json => {
                    serde_json::to_writer_pretty(&mut out, &snap)?;
                    writeln!(out)?;
                }
                SnapshotFormat::Table => out.write_all(output::snapshot_table(&snap).as_bytes())?,
            }
        }
        Command::Watch {
            collect,
            output,
            samples,
        } => {
            let stop = AtomicBool::new(false);
            let mut out = stdout.lock();
            let mut write_err = None;
            runtime::run(&collect.config(), samples, &stop, |o| {
                let r = match (output, o) {
                    (WatchFormat::Jsonl, Output::Event(e)) => output::json_line(&mut out, e),
                    (WatchFormat::Jsonl, Output::Sample(s)) => output::json_line(
                        &mut out,
                        &Tagged {
                            kind: "container_sample",
                            value: s,
                        },
                    ),
                    (WatchFormat::Jsonl, Output::Node(n)) => output::json_line(
                        &mut out,
                        &Tagged {
                            kind: "node_sample",
                            value: n,
                        },
                    ),
                    (WatchFormat::Table, Output::Event(e)) => {
                        writeln!(out, "{}", gpuscope_model::text::event_line(e))
                    }
                    (WatchFormat::Table, Output::Sample(s)) => {
                        writeln!(out, "{}", output::sample_line(s))
                    }
                    (WatchFormat::Jsonl, Output::Gpus(gpus)) => gpus.iter().try_for_each(|g| {
                        output::json_line(
                            &mut out,
                            &Tagged {
                                kind: "gpu_sample",
                                value: g,
                            },
                        )
                    }),
                    (WatchFormat::Table, Output::Gpus(gpus)) => gpus
                        .iter()
                        .try_for_each(|g| writeln!(out, "{}", output::gpu_line(g))),
                    (WatchFormat::Table, Output::Node(_)) => Ok(()),
                };
                if let Err(e) = r {
                    // stdout closed (e.g. piped into `head`): stop watching.
                    write_err.get_or_insert(e);
                    stop.store(true, Ordering::Relaxed);
                }
            })?;
            if let Some(e) = write_err {
                return Err(e.into());
            }
        }
        Command::Run { collect, ship } => {
            let config = collect.config();
            let identity = stream::identity(
                ship.node_name.clone(),
                &config.proc_root,
                &config.cgroup_root,
            )?;
            tracing::info!(node = %identity.node_name, boot_id = %identity.boot_id, aggregator = %ship.aggregator, "Starting.");
            let shipper = Shipper::start(
                ShipConfig {
                    aggregator: ship.aggregator,
                    state_dir: ship.state_dir,
                    queue_max_bytes: ship.queue_max_bytes,
                    report_interval: ship.report_interval,
                    tls: ship.tls,
                    token_file: ship.token_file,
                    kmsg_not_kernel: config.kmsg_not_kernel.clone(),
                },
                identity,
            )?;
            let health = Arc::new(Health::new(
                config.interval,
                ship.health_stale,
                shipper.connected(),
            ));
            if let Some(addr) = ship.health_listen {
                let bound = health::serve(addr, health.clone())?;
                tracing::info!(addr = %bound, "Serving /livez and /readyz.");
            }
            let stop = AtomicBool::new(false);
            runtime::run(&config, true, &stop, |o| {
                health.observe(&o);
                match o {
                    Output::Event(e) => shipper.event(e),
                    Output::Sample(s) => shipper.container(s),
                    Output::Node(n) => shipper.node(n),
                    Output::Gpus(g) => shipper.gpus(g),
                }
            })?;
        }
    }
    Ok(())
}

fn init_logging(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("warn"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
