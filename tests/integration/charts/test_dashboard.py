"""The chart's Grafana dashboard, checked against Grafana's own schema and for what a reader needs.

The schema is the TypeScript Grafana generates from its CUE schemas and publishes as `@grafana/schema`
(the dashboard model, and each panel plugin's options and field config) plus the Prometheus query
model of `@grafana/prometheus`; hack/install-tools.sh pins and caches both with the compiler. The
dashboard JSON is compiled as a literal of that type: a wrong type, an unknown key, a value outside an
enum or a missing required option is a compile error at the dashboard's own line. Panel queries
against a real Prometheus: tests/e2e/test_dashboard_queries.py.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

import campaign_operator.metrics  # noqa: F401  (registers the operator's metrics)

from .conftest import CHART, REPO

pytestmark = pytest.mark.integration

DASHBOARD = CHART / "dashboards" / "campaign-operator.json"
GATE = "campaign_phase_gate_passed"
RATES = ("campaign_phase_failure_rate", "campaign_phase_max_failure_rate")

# Grafana's types, made to read JSON: a TypeScript enum becomes the union of its values (JSON holds
# "absolute", never ThresholdsMode.Absolute); everything else is Grafana's type as published. Panels
# are a union discriminated by `type`, so each is checked against its own plugin's schema; a panel
# type missing here fails the check (add its panelcfg import, never widen to `string`).
SCHEMA_TS = """\
import type * as raw from 'grafana-raw/dashboard/x/types.gen';
import type * as timeseries from 'grafana-raw/composable/timeseries/panelcfg/x/types.gen';
import type * as stat from 'grafana-raw/composable/stat/panelcfg/x/types.gen';
import type * as table from 'grafana-raw/composable/table/panelcfg/x/types.gen';
import type { Prometheus } from 'grafana-prometheus/dataquery';

type Json<T> = 0 extends 1 & T ? T
  : T extends string ? `${T}`
  : T extends number | boolean | null | undefined ? T
  : T extends ReadonlyArray<infer U> ? Array<Json<U>>
  : T extends object ? { [K in keyof T]: Json<T[K]> }
  : T;

type FieldConfigSource<Custom> = {
  defaults: Json<Omit<raw.FieldConfig, 'custom'>> & { custom?: Json<Custom> };
  overrides: Json<raw.FieldConfigSource['overrides']>;
};
type PanelOf<Kind extends string, Options, Custom> =
  Json<Omit<raw.Panel, 'type' | 'options' | 'fieldConfig' | 'targets'>> & {
    type: Kind;
    options?: Json<Options>;
    fieldConfig?: FieldConfigSource<Custom>;
    targets?: Array<Json<Prometheus>>;
  };
type Panel =
  | PanelOf<'timeseries', timeseries.Options, timeseries.FieldConfig>
  | PanelOf<'stat', stat.Options, Record<string, never>>
  | PanelOf<'table', table.Options, table.FieldConfig>
  | Json<raw.RowPanel>;
export type Dashboard = Json<Omit<raw.Dashboard, 'panels'>> & { panels?: Array<Panel> };
"""

TSCONFIG = {
    "compilerOptions": {
        "strict": True,
        "noEmit": True,
        # Grafana's .d.ts files are not ours to check (and @grafana/prometheus's UI imports are absent).
        "skipLibCheck": True,
        "module": "esnext",
        "moduleResolution": "bundler",
        "target": "es2022",
        "types": [],
        "paths": {
            "grafana-raw/*": ["./node_modules/@grafana/schema/dist/types/raw/*"],
            "grafana-prometheus/*": ["./node_modules/@grafana/prometheus/dist/types/*"],
        },
    },
    "files": ["dashboard.ts"],
}
# The dashboard's text follows this on the same line, so tsc's line numbers are the JSON file's.
PREAMBLE = "import type { Dashboard } from './schema'; export const dashboard: Dashboard = "


@pytest.fixture(scope="session")
def grafana_schema() -> Path:
    """The directory hack/install-tools.sh installed @grafana/schema and typescript into."""
    out = subprocess.run([str(REPO / "hack" / "install-tools.sh")], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.fail(f"hack/install-tools.sh failed:\n{out.stderr}", pytrace=False)
    (line,) = [s for s in out.stdout.splitlines() if s.startswith("grafana-schema=")]
    return Path(line.split("=", 1)[1])


SchemaCheck = Callable[[str], list[str]]


@pytest.fixture
def schema_errors(grafana_schema: Path, tmp_path: Path) -> SchemaCheck:
    """Compiles a dashboard's JSON text against Grafana's schema; returns tsc's errors as
    `LINE:COL: message (the JSON line)`, empty when the dashboard conforms."""
    (tmp_path / "node_modules").symlink_to(grafana_schema / "node_modules")
    (tmp_path / "schema.ts").write_text(SCHEMA_TS)
    (tmp_path / "tsconfig.json").write_text(json.dumps(TSCONFIG))
    tsc = grafana_schema / "node_modules" / "typescript" / "bin" / "tsc"

    def check(text: str) -> list[str]:
        (tmp_path / "dashboard.ts").write_text(PREAMBLE + text.rstrip() + ";\n")
        r = subprocess.run(["node", str(tsc), "-p", "."], cwd=tmp_path, capture_output=True, text=True)
        lines = text.splitlines()
        errors = []
        for m in re.finditer(r"^dashboard\.ts\((\d+),(\d+)\): error (TS\d+: .*)$", r.stdout, re.M):
            line, col = int(m[1]), int(m[2]) - (len(PREAMBLE) if m[1] == "1" else 0)
            errors.append(f"{line}:{col}: {m[3][:400]} ({lines[line - 1].strip()})")
        assert errors or r.returncode == 0, f"tsc failed without a located error:\n{r.stdout}{r.stderr}"
        return errors

    return check


def load() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in dash["panels"]:
        yield p
        yield from p.get("panels", [])


def _exprs(panel: dict[str, Any]) -> list[str]:
    return [t["expr"] for t in panel.get("targets", [])]


def test_the_dashboard_conforms_to_grafanas_schema(schema_errors: SchemaCheck):
    errors = schema_errors(DASHBOARD.read_text())
    assert not errors, f"{DASHBOARD.relative_to(REPO)} breaks Grafana's schema:\n" + "\n".join(errors)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting one value by a dotted path (numbers index lists)."""

    def mutate(dash: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = dash
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(last) if isinstance(node, list) else last] = value

    return mutate


def _rename_key(dash: dict[str, Any]) -> None:
    defaults = dash["panels"][0]["fieldConfig"]["defaults"]
    defaults["units"] = defaults.pop("unit")


def _misspell_mapping_type(dash: dict[str, Any]) -> None:
    gate = next(p for p in dash["panels"] if any(GATE in e for e in _exprs(p)))
    gate["fieldConfig"]["defaults"]["mappings"][0]["type"] = "values"


def _drop_required(dash: dict[str, Any]) -> None:
    del next(p for p in dash["panels"] if p["type"] == "stat")["options"]["textMode"]


@pytest.mark.parametrize(
    ("mutate", "expect"),
    [
        (_set("panels.0.gridPos.w", "12"), r"Type 'string' is not assignable to type 'number'"),
        (_rename_key, r"'\"units\"' does not exist"),
        (_misspell_mapping_type, r"'\"values\"' is not assignable"),
        (
            _set("panels.0.targets.0.format", "tabel"),
            r"'\"tabel\"' is not assignable to type 'PromQueryFormat",
        ),
        (_set("templating.list.1.type", "dropdown"), r"'\"dropdown\"' is not assignable"),
        (_set("panels.0.type", "piechart"), r"'\"piechart\"' is not assignable"),
        (_drop_required, r"Property 'textMode' is missing"),
    ],
    ids=[
        "gridPos-width-string",
        "unknown-key",
        "mapping-type",
        "query-format",
        "variable-type",
        "unchecked-panel-type",
        "required-option-missing",
    ],
)
def test_the_schema_check_fails_on_a_real_violation(schema_errors: SchemaCheck, mutate, expect):
    dash = copy.deepcopy(load())
    mutate(dash)
    errors = schema_errors(json.dumps(dash, indent=2))
    assert any(re.search(expect, e) for e in errors), errors


# What a reader of the dashboard needs, beyond the schema.


def test_variables_select_datasource_namespace_campaign_phase_from_the_operators_labels():
    variables = {v["name"]: v for v in load()["templating"]["list"]}
    assert list(variables) == ["datasource", "namespace", "campaign", "phase"]
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")
    chain = ""
    for name in ("namespace", "campaign", "phase"):
        v = variables[name]
        assert v["type"] == "query" and v["datasource"]["uid"] == "${datasource}", v
        m = re.fullmatch(r"label_values\((\w+)(\{.*\})?, (\w+)\)", v["query"])
        assert m and m[3] == name, v["query"]
        assert (m[2] or "") == (f"{{{chain}}}" if chain else ""), f"{name} is not narrowed by the ones before"
        assert v["includeAll"] and v["multi"] and v["allValue"] == ".*"
        chain += (", " if chain else "") + f'{name}=~"${name}"'


def test_every_query_is_filtered_by_the_variables_and_uses_the_selected_datasource():
    for p in panels(load()):
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"], p["title"]
            e = t["expr"]
            # Campaign series are narrowed by the variables; the operator-wide ones have no such labels.
            if re.search(r"\bcampaign_(phase_|state\b|trial_|reconcile_errors)", e):
                assert 'namespace=~"$namespace"' in e and 'campaign=~"$campaign"' in e, (p["title"], e)
            if "campaign_phase_" in e or "campaign_trial_" in e:
                assert 'phase=~"$phase"' in e, (p["title"], e)
            # A label value of the operator's (e.g. the Trial plural in `resource`) may change: never
            # pin one in a query.
            assert not re.search(r'\b(resource|verb|state|metric)=~?"', e), (p["title"], e)


def test_every_metric_a_query_reads_is_one_the_operator_exports():
    exported = set()
    for family in REGISTRY.collect():
        exported |= {s.name for s in family.samples} | {family.name}
        if family.type == "histogram":
            exported |= {f"{family.name}_bucket", f"{family.name}_count", f"{family.name}_sum"}
        if family.type == "counter":
            exported.add(f"{family.name}_total")
    for p in panels(load()):
        for e in _exprs(p):
            for name in set(re.findall(r"\bcampaign_\w+", e)):
                assert name in exported, (
                    f"panel {p['title']!r} reads {name}, which metrics.py does not export"
                )


def test_gate_panels_map_each_value_of_the_metric_to_words_and_colours():
    """campaign_phase_gate_passed: 1 the gate held, 0 it did not, -1 not evaluated (or no gate)."""
    dash = load()
    gate_panels = [p for p in panels(dash) if any(GATE in e for e in _exprs(p))]
    assert gate_panels
    for p in gate_panels:
        fc = p["fieldConfig"]
        overridden = [
            pr["value"] for o in fc["overrides"] for pr in o["properties"] if pr["id"] == "mappings"
        ]
        mappings = fc["defaults"].get("mappings") or (overridden[0] if overridden else [])
        value_maps = [m for m in mappings if m["type"] == "value"]
        assert len(value_maps) == 1, f"panel {p['title']!r} shows the gate as a bare number"
        (value_map,) = value_maps
        got = {k: (r["text"], r["color"]) for k, r in value_map["options"].items()}
        assert got == {"1": ("passed", "green"), "0": ("failed", "red"), "-1": ("not evaluated", "text")}, p


def _unit_of(panel: dict[str, Any], ref: str) -> str:
    """The unit a target's values are shown in: the panel default, or a byName override of a table's
    renamed `Value #REF` column."""
    unit = str(panel["fieldConfig"]["defaults"].get("unit"))
    renames = {}
    for t in panel.get("transformations", []):
        if t["id"] == "organize":
            renames = t["options"].get("renameByName", {})
    column = renames.get(f"Value #{ref}")
    for o in panel["fieldConfig"]["overrides"]:
        if o["matcher"] == {"id": "byName", "options": column}:
            unit = next((str(p["value"]) for p in o["properties"] if p["id"] == "unit"), unit)
    return unit


def test_units_say_what_the_numbers_are():
    for p in panels(load()):
        for t in p.get("targets", []):
            e, unit = t["expr"], _unit_of(p, t["refId"])
            if any(r in e for r in RATES):
                assert unit == "percentunit", (p["title"], e, unit)
            elif "_seconds_bucket" in e:
                assert unit == "s", (p["title"], e, unit)
            elif "campaign_phase_trials" in e:
                assert unit == "short" and p["fieldConfig"]["defaults"].get("decimals", 0) == 0, p["title"]
            elif "rate(" in e and "_total" in e:
                assert unit in ("ops", "reqps"), (p["title"], e, unit)


def test_tables_and_stats_run_instant_queries_and_tables_ask_for_table_frames():
    for p in panels(load()):
        for t in p.get("targets", []):
            if p["type"] in ("table", "stat"):
                assert t["instant"] is True and t["range"] is False, (p["title"], t["refId"])
            if p["type"] == "table":
                assert t["format"] == "table", (p["title"], t["refId"])
            if p["type"] == "timeseries":
                assert t["range"] is True and t["instant"] is False, (p["title"], t["refId"])


def test_the_failure_threshold_is_drawn_unlike_the_rate_it_bounds():
    dash = load()
    (p,) = [
        p
        for p in panels(dash)
        if p["type"] == "timeseries" and any("campaign_phase_max_failure_rate" in e for e in _exprs(p))
    ]
    refs = {t["refId"]: t["expr"] for t in p["targets"]}
    (threshold,) = [r for r, e in refs.items() if "campaign_phase_max_failure_rate" in e]
    (rate,) = [r for r, e in refs.items() if "campaign_phase_failure_rate{" in e]
    styled = {
        o["matcher"]["options"]: {prop["id"]: prop["value"] for prop in o["properties"]}
        for o in p["fieldConfig"]["overrides"]
        if o["matcher"]["id"] == "byFrameRefID"
    }
    assert rate not in styled, "the rate keeps the panel's palette"
    assert threshold in styled, "the threshold is drawn like one more rate"
    line = styled[threshold]
    assert line["custom.lineStyle"]["fill"] == "dash" and line["custom.lineStyle"]["dash"], line
    assert line["color"] == {"mode": "fixed", "fixedColor": "red"}, line
    assert "threshold" in next(t["legendFormat"] for t in p["targets"] if t["refId"] == threshold)


def test_panels_have_unique_ids_and_do_not_overlap_on_the_grid():
    seen: dict[tuple[int, int], str] = {}
    ids = []
    for p in panels(load()):
        ids.append(p["id"])
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in seen, f"{p['title']!r} overlaps {seen[(x, y)]!r}"
                seen[(x, y)] = p["title"]
    assert len(ids) == len(set(ids))
