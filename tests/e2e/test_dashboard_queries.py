"""Every panel of the chart's Grafana dashboard has data: Debian's real Prometheus scrapes the operator
(its own process, on a real apiserver) while a real campaign trains on a real Ray head; then each
panel's queries run against that Prometheus as Grafana would run them, with the dashboard's variables
resolved through its own `label_values` queries and set to the campaign's namespace, name and each of
its phases (and to All). A query with no series, or with nothing but NaN, is a panel saying "No
data"; the test names it."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from integration.k8s.opkit import Kube, OperatorProcess, wait_for

from .conftest import Prometheus, RayHead, campaign, run_to_end

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "charts" / "campaign-operator" / "dashboards" / "campaign-operator.json"

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Grafana's $__rate_interval is max(4 x scrape interval, $__interval + scrape interval); Prometheus
# scrapes every 1 s here and the range queries step by 2 s. 10 s leaves room for a late scrape.
RATE_INTERVAL = "10s"
STEP = 2.0


# Two phases side by side, one trial each: one with a gate (the gate panel shows 1), one without
# (-1), both with a failure threshold, both producing a best metric and a duration.
PHASES = [
    {
        "name": "smoke",
        "gate": {"expression": "phase.succeeded == 1"},
        "failurePolicy": {"maxFailureRate": 0.2},
    },
    {"name": "explore", "failurePolicy": {"maxFailureRate": 0.5, "retries": 0}},
]


def grafana_regex(value: str) -> str:
    """A single value of a multi-value variable as Grafana writes it into `=~`: regex-escaped."""
    return re.sub(r"([\\^$*+?.()|{}\[\]/])", r"\\\1", value)


def interpolate(expr: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        expr = expr.replace(f"${{{name}}}", value).replace(f"${name}", value)
    expr = expr.replace("$__rate_interval", RATE_INTERVAL)
    assert "$" not in expr, f"a variable the test does not fill: {expr}"
    return expr


def has_data(result: list[dict[str, Any]]) -> bool:
    """A series with a number Grafana would draw (Prometheus writes NaN as the string "NaN")."""
    points = [s["value"] for s in result if "value" in s] + [v for s in result for v in s.get("values", [])]
    return any(math.isfinite(float(v)) for _, v in points)


def resolve_variables(
    dash: dict[str, Any], prom: Prometheus, chosen: dict[str, str], start: float, end: float
) -> dict[str, list[str]]:
    """Each query variable's options, from its own label_values query with the variables before it
    set to their chosen values, as Grafana's chained variables do."""
    options: dict[str, list[str]] = {}
    values: dict[str, str] = {}
    for v in dash["templating"]["list"]:
        if v["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.+), (\w+)\)", interpolate(v["query"], values))
        assert m, f"variable {v['name']}: not a label_values query: {v['query']}"
        options[v["name"]] = prom.label_values(m[2], m[1], start, end)
        values[v["name"]] = grafana_regex(chosen[v["name"]]) if v["name"] in chosen else v["allValue"]
    return options


def empty_panels(
    dash: dict[str, Any], prom: Prometheus, values: dict[str, str], start: float, end: float
) -> list[str]:
    """The panels (and queries) that would show No data with the variables set to `values`."""
    empty = []
    for panel in dash["panels"]:
        for t in panel.get("targets", []):
            expr = interpolate(t["expr"], values)
            if t.get("instant"):
                result = prom.query(expr, at=end)
            else:
                result = prom.query_range(expr, start, end, STEP)
            if not has_data(result):
                empty.append(f"{panel['title']!r} query {t['refId']}: {expr} -> {json.dumps(result)[:300]}")
    return empty


def test_every_panel_of_the_dashboard_has_data_from_a_real_campaign(
    kube: Kube,
    ns: str,
    operator: OperatorProcess,
    ray_head: RayHead,
    prometheus: Callable[..., Prometheus],
):
    prom = prometheus([f"127.0.0.1:{operator.metrics_port}"])
    wait_for(lambda: prom.query('up{job="campaign-operator"} == 1'), 60, "Prometheus scraping the operator")
    start = time.time()
    run_to_end(kube, ns, campaign("dash", ray_head, PHASES), operator, ray_head, 300)
    assert kube.state(ns, "dash") == "Succeeded", kube.campaign(ns, "dash")["status"]
    done = f'campaign_state{{namespace="{ns}", campaign="dash", state="Succeeded"}} == 1'
    wait_for(lambda: prom.query(done), 30, "Prometheus to scrape the finished campaign")
    time.sleep(3 * STEP)  # a few more scrapes, so every rate() has two samples of the end state
    end = time.time()

    dash = json.loads(DASHBOARD.read_text())
    chosen = {"datasource": "prometheus", "namespace": ns, "campaign": "dash"}
    options = resolve_variables(dash, prom, chosen, start, end)
    assert ns in options["namespace"] and "dash" in options["campaign"], options
    assert sorted(options["phase"]) == ["explore", "smoke"], options

    values = {"datasource": "prometheus", "namespace": grafana_regex(ns), "campaign": "dash"}
    failures = []
    for phase in [*options["phase"], "All"]:
        selected = values | {"phase": ".*" if phase == "All" else grafana_regex(phase)}
        failures += [f"phase={phase}: {e}" for e in empty_panels(dash, prom, selected, start, end)]
    assert not failures, "panels with No data:\n" + "\n".join(failures)
    # The check sees No data where there is none: another campaign's name empties every campaign query.
    other = empty_panels(dash, prom, values | {"campaign": "no-such-campaign", "phase": ".*"}, start, end)
    campaign_queries = [t for p in dash["panels"] for t in p.get("targets", []) if "$campaign" in t["expr"]]
    assert len(other) == len(campaign_queries) > 0, other

    # The numbers are the campaign's: the gate panel reads 1 for the gated phase, -1 for the other.
    gate = next(t["expr"] for p in dash["panels"] if p["title"] == "Gate" for t in p["targets"])
    got = {
        s["metric"]["phase"]: float(s["value"][1])
        for s in prom.query(interpolate(gate, values | {"phase": ".*"}), at=end)
    }
    assert got == {"smoke": 1.0, "explore": -1.0}, got
