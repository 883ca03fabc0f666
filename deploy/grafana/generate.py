#!/usr/bin/env python3
"""Writes gpuscope's Grafana dashboards (deploy/grafana/*.json) with
Grafana's own SDK, grafana-foundation-sdk (pinned in requirements.txt), so
that their JSON follows Grafana's dashboard schema.

    pip install -r deploy/grafana/requirements.txt
    python3 deploy/grafana/generate.py          # rewrites the JSON files
    python3 deploy/grafana/generate.py --check  # exits 1 when they differ

Every dashboard has the variables datasource (a Prometheus data source),
cluster (the `cluster` label that Prometheus' external_labels or the
scrape job adds; `.*` matches series without one) and namespace and/or
node; every query selects `cluster=~"$cluster"`. The series are the
aggregator's (docs/metrics.md). tests/tests/prometheus.rs evaluates every
expression of every panel and annotation through a real Prometheus
scraping a real aggregator and agent, and fails on any that returns no
data.
"""

import json
import pathlib
import sys

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import prometheus as prom_model

HERE = pathlib.Path(__file__).resolve().parent
DS = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
C = 'cluster=~"$cluster"'


def q(expr, legend=None, instant=False):
    t = prom.Dataquery().expr(expr)
    if legend:
        t = t.legend_format(legend)
    if instant:
        t = t.instant().format(prom_model.PromQueryFormat.TABLE)
    return t


def ts(title, unit, *targets, desc=None, w=12, h=8):
    p = timeseries.Panel().title(title).unit(unit).datasource(DS).span(w).height(h)
    if desc:
        p = p.description(desc)
    for i, t in enumerate(targets):
        p = p.with_target(t.ref_id(chr(ord("A") + i)))
    return p


def st(title, unit, target, desc=None, w=6, h=4):
    p = (
        stat.Panel()
        .title(title)
        .unit(unit)
        .datasource(DS)
        .span(w)
        .height(h)
        .graph_mode(common.BigValueGraphMode.AREA)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]))
        .with_target(target.ref_id("A"))
    )
    if desc:
        p = p.description(desc)
    return p


def tb(title, target, desc=None, w=12, h=8):
    p = table.Panel().title(title).datasource(DS).span(w).height(h).with_target(target.ref_id("A"))
    if desc:
        p = p.description(desc)
    return p


def variables(d, *names):
    d = d.with_variable(
        dash.DatasourceVariable("datasource").label("Data source").type("prometheus")
    )
    d = d.with_variable(
        dash.QueryVariable("cluster")
        .label("Cluster")
        .datasource(DS)
        .query("label_values(gpuscope_agent_connected, cluster)")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .include_all(True)
        .all_value(".*")
        .multi(True)
    )
    queries = {
        "namespace": f'label_values(gpuscope_container_memory_usage_bytes{{{C}}}, namespace)',
        "node": f'label_values(gpuscope_agent_connected{{{C}}}, node)',
        "pod": f'label_values(gpuscope_container_memory_usage_bytes{{{C}, namespace="$namespace"}}, pod)',
    }
    for name in names:
        v = (
            dash.QueryVariable(name)
            .label(name.capitalize())
            .datasource(DS)
            .query(queries[name])
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC)
        )
        if name in ("node",):
            v = v.include_all(True).all_value(".*").multi(True)
        d = d.with_variable(v)
    return d


def base(uid, title, description):
    return (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["gpuscope", "gpu", "kubernetes"])
        .editable()
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
    )


def cluster():
    d = variables(
        base(
            "gpuscope-cluster",
            "gpuscope / Cluster GPU overview",
            "GPU utilization and memory across the cluster, idle GPU-hours by namespace and owner, "
            "OOM kills, XIDs and findings.",
        ),
        "namespace",
        "node",
    )
    sel = f'{C}, node=~"$node"'
    panels = [
        st("GPUs reporting", "none", q(f"count(gpuscope_gpu_memory_total_bytes{{{sel}}})")),
        st(
            "Mean GPU utilization",
            "percentunit",
            q(f"avg(gpuscope_gpu_utilization_ratio{{{sel}}})"),
        ),
        st(
            "Agents connected",
            "none",
            q(f"sum(gpuscope_agent_connected{{{sel}}})"),
            desc="Nodes whose agent has a stream open to the aggregator.",
        ),
        st(
            "Idle GPU-hours",
            "none",
            q(f"sum(gpuscope_idle_gpu_hours{{{C}}})"),
            desc="GPU-hours allocated to pods and idle, at the latest cluster diagnosis.",
        ),
        ts(
            "GPU utilization by node",
            "percentunit",
            q(f"avg by (node) (gpuscope_gpu_utilization_ratio{{{sel}}})", "{{node}}"),
        ),
        ts(
            "GPU memory used by namespace",
            "bytes",
            q(
                f"sum by (namespace) (gpuscope_gpu_memory_used_bytes{{{sel}}})",
                "{{namespace}}",
            ),
            desc="By the namespace of the pod the kubelet gave each GPU to; empty: not allocated.",
        ),
        tb(
            "Idle GPU-hours by namespace and owner",
            q(
                f'sort_desc(sum by (namespace, owner) (gpuscope_idle_gpu_hours{{{C}, namespace=~"$namespace"}}))',
                instant=True,
            ),
            desc="gpu_idle and gpu_memory_idle findings; `gpuscope idle -n NS` names the GPUs.",
        ),
        tb(
            "Findings by kind and namespace",
            q(
                f"sort_desc(sum by (kind, namespace) (gpuscope_findings{{{C}}}))",
                instant=True,
            ),
            desc="The latest cluster diagnosis; `gpuscope diagnose -A` lists them.",
        ),
        ts(
            "XID errors",
            "none",
            q(
                f"sum by (node, gpu, xid) (increase(gpuscope_gpu_xid_errors_total{{{sel}}}[$__rate_interval]))",
                "{{node}} GPU {{gpu}} XID {{xid}}",
            ),
        ),
        ts(
            "OOM kills by namespace",
            "none",
            q(
                f"sum by (namespace) (increase(gpuscope_oom_kills_total{{{sel}}}[$__rate_interval]))",
                "{{namespace}}",
            ),
        ),
    ]
    for i, p in enumerate(panels):
        d = d.with_panel(p.id(i + 1))
    return d


def pod():
    d = variables(
        base(
            "gpuscope-pod",
            "gpuscope / Pod drill-down",
            "One pod: memory against its limit with its OOM kills, pressure, CPU, "
            "its GPUs and their processes, and the findings of its namespace.",
        ),
        "namespace",
        "pod",
    )
    sel = f'{C}, namespace="$namespace", pod="$pod"'
    d = d.annotation(
        dash.AnnotationQuery()
        .name("OOM kills")
        .datasource(DS)
        .enable(True)
        .icon_color("red")
        .expr(
            f"sum by (container) (changes(gpuscope_container_oom_kills_total{{{sel}}}[$__interval])) > 0"
        )
    )
    panels = [
        ts(
            "Memory vs limit",
            "bytes",
            q(f"sum by (container) (gpuscope_container_memory_usage_bytes{{{sel}}})", "{{container}} usage"),
            q(f"max by (container) (gpuscope_container_memory_limit_bytes{{{sel}}})", "{{container}} limit"),
            q(f"sum by (container) (gpuscope_container_memory_anon_bytes{{{sel}}})", "{{container}} anon"),
            desc="OOM kills are the red annotations.",
            w=24,
        ),
        st(
            "OOM kills (current containers)",
            "none",
            q(f"sum(gpuscope_container_oom_kills_total{{{sel}}})"),
        ),
        ts(
            "Memory pressure",
            "percentunit",
            q(
                f'sum by (container, kind) (rate(gpuscope_container_pressure_stalled_seconds_total{{{sel}, resource="memory"}}[$__rate_interval]))',
                "{{container}} {{kind}}",
            ),
            desc="Share of time tasks stalled on memory (PSI).",
            w=9,
        ),
        ts(
            "CPU",
            "short",
            q(
                f"sum by (container) (rate(gpuscope_container_cpu_usage_seconds_total{{{sel}}}[$__rate_interval]))",
                "{{container}}",
            ),
            desc="Cores used.",
            w=9,
        ),
        ts(
            "GPU utilization (GPUs the pod holds)",
            "percentunit",
            q(f"max by (gpu, UUID) (gpuscope_gpu_utilization_ratio{{{sel}}})", "GPU {{gpu}}"),
        ),
        ts(
            "GPU memory per process",
            "bytes",
            q(
                f"sum by (container, pid, gpu) (gpuscope_gpu_process_memory_used_bytes{{{sel}}})",
                "{{container}} pid {{pid}} GPU {{gpu}}",
            ),
        ),
        ts(
            "SM utilization per process",
            "percentunit",
            q(
                f"max by (container, pid, gpu) (gpuscope_gpu_process_sm_utilization_ratio{{{sel}}})",
                "{{container}} pid {{pid}} GPU {{gpu}}",
            ),
        ),
        tb(
            "Findings in the namespace",
            q(
                f'sum by (kind) (gpuscope_findings{{{C}, namespace="$namespace"}})',
                instant=True,
            ),
            desc="`gpuscope explain $pod -n $namespace` explains the pod.",
        ),
    ]
    for i, p in enumerate(panels):
        d = d.with_panel(p.id(i + 1))
    return d


def node():
    d = variables(
        base(
            "gpuscope-node",
            "gpuscope / Node health",
            "GPU capacity against allocatable, the device plugin, XIDs and lost GPUs, "
            "and the gpuscope agent's own health.",
        ),
        "node",
    )
    sel = f'{C}, node=~"$node"'
    panels = [
        ts(
            "GPU capacity vs allocatable",
            "none",
            q(f"sum by (node, resource) (gpuscope_node_gpu_capacity{{{sel}}})", "{{node}} {{resource}} capacity"),
            q(f"sum by (node, resource) (gpuscope_node_gpu_allocatable{{{sel}}})", "{{node}} {{resource}} allocatable"),
            desc="From the node objects; allocatable below capacity: the device plugin marked GPUs unhealthy.",
        ),
        ts(
            "GPUs reported by the agent",
            "none",
            q(f"count by (node) (gpuscope_gpu_memory_total_bytes{{{sel}}})", "{{node}}"),
        ),
        tb(
            "Device-plugin pods",
            q(f"max by (node, namespace, pod) (gpuscope_device_plugin_ready{{{sel}}})", instant=True),
            desc="1: Ready.",
        ),
        ts(
            "XID errors by GPU",
            "none",
            q(f"sum by (node, gpu, xid) (gpuscope_gpu_xid_errors_total{{{sel}}})", "{{node}} GPU {{gpu}} XID {{xid}}"),
        ),
        ts(
            "GPUs lost",
            "none",
            q(f"sum by (node, gpu) (gpuscope_gpu_lost_total{{{sel}}})", "{{node}} GPU {{gpu}}"),
        ),
        ts(
            "Agent connected",
            "none",
            q(f"max by (node) (gpuscope_agent_connected{{{sel}}})", "{{node}}"),
        ),
        ts(
            "Agent sources degraded",
            "none",
            q(f"max by (node, source) (gpuscope_agent_source_degraded{{{sel}}})", "{{node}} {{source}}"),
        ),
        ts(
            "Agent CPU",
            "short",
            q(f"rate(gpuscope_agent_cpu_seconds_total{{{sel}}}[$__rate_interval])", "{{node}}"),
            desc="Cores the agent uses.",
        ),
        ts(
            "Agent memory",
            "bytes",
            q(f"gpuscope_agent_resident_memory_bytes{{{sel}}}", "{{node}}"),
        ),
        ts(
            "Agent event queue",
            "none",
            q(f"gpuscope_agent_queue_events{{{sel}}}", "{{node}} queued"),
            q(f"increase(gpuscope_agent_queue_dropped_events_total{{{sel}}}[$__rate_interval])", "{{node}} dropped"),
        ),
        ts(
            "Agent reconnects and dropped samples",
            "none",
            q(f"increase(gpuscope_agent_reconnects_total{{{sel}}}[$__rate_interval])", "{{node}} reconnects"),
            q(f"increase(gpuscope_agent_dropped_samples_total{{{sel}}}[$__rate_interval])", "{{node}} dropped samples"),
        ),
        ts(
            "Node memory available",
            "bytes",
            q(f"gpuscope_node_memory_available_bytes{{{sel}}}", "{{node}}"),
        ),
    ]
    for i, p in enumerate(panels):
        d = d.with_panel(p.id(i + 1))
    return d


DASHBOARDS = {
    "gpuscope-cluster.json": cluster,
    "gpuscope-pod.json": pod,
    "gpuscope-node.json": node,
}


def render(build):
    return json.dumps(build().build(), cls=JSONEncoder, sort_keys=True, indent=2) + "\n"


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, build in DASHBOARDS.items():
        text = render(build)
        path = HERE / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(
            f"deploy/grafana: {', '.join(stale)} differ from generate.py's output; "
            "run python3 deploy/grafana/generate.py and commit the result",
            file=sys.stderr,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
