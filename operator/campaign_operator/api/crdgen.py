"""Generates the CRDs in crds/ from the pydantic models (the one source of truth).

    python -m campaign_operator.api.crdgen crds/

pydantic's JSON schema is turned into a Kubernetes structural schema: $refs inlined, nullables
dropped (optional = absent), free-form maps marked x-kubernetes-preserve-unknown-fields, and each
model's CelRules attached as x-kubernetes-validations.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from .base import CAMPAIGNS, GROUP, TEXT_MAX_LENGTH, TRIALS, VERSION, ApiModel
from .campaign import TrainingCampaign, TrainingCampaignSpec, TrainingCampaignStatus
from .trial import TrialSpec, TrialStatus

Schema = dict[str, Any]

# Rules on a CEL node are costed by the apiserver from these bounds; keep them generous but finite.
_DEFAULT_MAX_STRING = TEXT_MAX_LENGTH


def _model_classes() -> dict[str, type[ApiModel]]:
    found: dict[str, type[ApiModel]] = {}
    stack: list[type[ApiModel]] = [ApiModel]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            found[sub.__name__] = sub
            stack.append(sub)
    return found


def _rules(model: type[ApiModel]) -> list[dict[str, str]]:
    return [
        {
            "rule": r.rule,
            "message": r.message,
            **({"messageExpression": r.message_expression} if r.message_expression else {}),
            **({"fieldPath": r.field_path} if r.field_path else {}),
        }
        for r in model.cel_rules
    ]


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(value)
    if isinstance(value, list | dict) and not value:
        return "[]" if isinstance(value, list) else "{}"
    return str(value)


def _facts(node: Schema) -> str:
    """Default and bounds in words, for `kubectl explain` (which shows neither from the schema)."""
    facts = []
    if "default" in node and node["default"] not in ([], {}):
        facts.append(f"Default: {_fmt(node['default'])}.")
    low, high = node.get("minimum"), node.get("maximum")
    open_low, open_high = node.get("exclusiveMinimum") is True, node.get("exclusiveMaximum") is True
    if low is not None and high is not None:
        facts.append(
            f"Range: {_fmt(low)} {'<' if open_low else '<='} value {'<' if open_high else '<='} {_fmt(high)}."
        )
    elif low is not None:
        facts.append(f"{'Greater than' if open_low else 'At least'} {_fmt(low)}.")
    elif high is not None:
        facts.append(f"{'Less than' if open_high else 'At most'} {_fmt(high)}.")
    lo_items, hi_items = node.get("minItems"), node.get("maxItems")
    if lo_items is not None and hi_items is not None:
        facts.append(f"{lo_items} to {hi_items} items.")
    elif hi_items is not None:
        facts.append(f"At most {hi_items} items.")
    elif lo_items:
        facts.append(f"At least {lo_items} item{'s' if lo_items != 1 else ''}.")
    lo_props, hi_props = node.get("minProperties"), node.get("maxProperties")
    if hi_props is not None:
        facts.append(f"At most {hi_props} entries.")
    elif lo_props:
        facts.append(f"At least {lo_props} entr{'ies' if lo_props != 1 else 'y'}.")
    if node.get("enum") and node.get("type") == "string" and len(node["enum"]) > 1:
        facts.append(f"One of: {', '.join(map(str, node['enum']))}.")
    return " ".join(facts)


def _describe(node: Schema) -> None:
    """Appends the default and bounds to every described property, in place (recursively)."""
    for child in (node.get("properties") or {}).values():
        _describe(child)
        facts = _facts(child)
        if facts and child.get("description"):
            child["description"] = f"{child['description'].rstrip()} {facts}"
        elif facts:
            child["description"] = facts
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            _describe(node[key])


class _Converter:
    def __init__(self, defs: dict[str, Schema]):
        self.defs = defs
        self.models = _model_classes()

    def convert(self, node: Schema) -> Schema:
        node = dict(node)
        if "$ref" in node:
            name = node.pop("$ref").rsplit("/", 1)[-1]
            target = self.convert(self.defs[name])
            # Field-level keys (description, default) win over the referenced definition's.
            merged = {**target, **{k: v for k, v in node.items() if k not in ("title",)}}
            model = self.models.get(name)
            if model is not None and model.cel_rules:
                merged["x-kubernetes-validations"] = _rules(model)
            if model is not None and model.exactly_one is not None:
                merged["oneOf"] = [{"required": [f]} for f in model.exactly_one.fields]
            return merged
        if "anyOf" in node:
            options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
            if len(options) == 1:
                inner = self.convert(options[0])
                return {**inner, **self._scalar_keys(node)}
            # Heterogeneous unions are stored as-is.
            return {"x-kubernetes-preserve-unknown-fields": True, **self._scalar_keys(node)}
        node.pop("title", None)
        if "const" in node:
            node["enum"] = [node.pop("const")]
        t = node.get("type")
        if t == "object" or "properties" in node:
            node["type"] = "object"
            props = node.get("properties")
            if props is not None:
                node["properties"] = {k: self.convert(v) for k, v in props.items()}
            extra = node.get("additionalProperties")
            if extra is True or extra == {}:
                node.pop("additionalProperties")
                node["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(extra, dict):
                node["additionalProperties"] = self.convert(extra)
            elif extra is False:
                node.pop("additionalProperties")
            if not props and "additionalProperties" not in node:
                node["x-kubernetes-preserve-unknown-fields"] = True
        elif t == "array":
            items = node.get("items", {})
            node["items"] = self.convert(items) if items else {"x-kubernetes-preserve-unknown-fields": True}
        elif t is None and "enum" not in node:
            # `Any`: keep whatever the user wrote.
            node["x-kubernetes-preserve-unknown-fields"] = True
        elif t == "string":
            if node.get("format") == "date-time":
                node.pop("maxLength", None)
            elif "enum" not in node:
                node.setdefault("maxLength", _DEFAULT_MAX_STRING)
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            if bound in node and not isinstance(node[bound], bool):
                node["minimum" if bound == "exclusiveMinimum" else "maximum"] = node[bound]
                node[bound] = True
        if "default" in node and node["default"] is None:
            node.pop("default")
        return node

    @staticmethod
    def _scalar_keys(node: Schema) -> Schema:
        return {k: v for k, v in node.items() if k in ("description", "default") and v is not None}


def _schema_for(model: type[ApiModel]) -> Schema:
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    defs[model.__name__] = raw
    schema = _Converter(defs).convert({"$ref": f"#/$defs/{model.__name__}"})
    _describe(schema)
    return schema


def _crd(
    kind: str,
    plural: str,
    singular: str,
    short_names: list[str],
    spec_model: type[ApiModel],
    status_model: type[ApiModel],
    description: str,
    columns: list[dict[str, Any]],
    root_rules: list[dict[str, str]],
) -> dict[str, Any]:
    spec_schema = _schema_for(spec_model)
    status_schema = _schema_for(status_model)
    status_schema["x-kubernetes-preserve-unknown-fields"] = True  # room for kopf's own bookkeeping
    root: Schema = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
    }
    if root_rules:
        root["x-kubernetes-validations"] = root_rules
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "campaign-operator"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": short_names,
                "categories": ["campaign-operator"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def _conditions_as_map(schema: Schema) -> None:
    conditions = schema["properties"]["status"]["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    conditions["maxItems"] = 16
    conditions["items"]["required"] = ["type", "status", "lastTransitionTime", "reason"]


def campaign_crd() -> dict[str, Any]:
    crd = _crd(
        "TrainingCampaign",
        CAMPAIGNS,
        "trainingcampaign",
        ["tc", "campaign"],
        TrainingCampaignSpec,
        TrainingCampaignStatus,
        "TrainingCampaign declares phases and sweeps of training trials, their failure thresholds "
        "and gates. The operator expands it into Trial objects and runs them on Ray.",
        [
            {"name": "State", "type": "string", "jsonPath": ".status.state"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.currentPhase"},
            {"name": "Progress", "type": "string", "jsonPath": ".status.progress"},
            {"name": "FailRate", "type": "string", "jsonPath": ".status.failRate"},
            {"name": "Run", "type": "string", "jsonPath": ".status.run"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
        _rules(TrainingCampaign),
    )
    _conditions_as_map(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    return crd


def trial_crd() -> dict[str, Any]:
    return _crd(
        "Trial",
        TRIALS,  # not `trials`: Katib's trials.kubeflow.org has it (api.base)
        "campaigntrial",
        ["ctrial"],
        TrialSpec,
        TrialStatus,
        "Trial is one run of one parameter set of a TrainingCampaign phase. Its spec is immutable.",
        [
            {"name": "Campaign", "type": "string", "jsonPath": ".spec.campaign", "priority": 1},
            {"name": "Phase", "type": "string", "jsonPath": ".spec.phase"},
            {"name": "State", "type": "string", "jsonPath": ".status.state"},
            {"name": "Reason", "type": "string", "jsonPath": ".status.reason"},
            {"name": "Epoch", "type": "integer", "jsonPath": ".status.epoch"},
            {"name": "Attempt", "type": "integer", "jsonPath": ".status.attempt", "priority": 1},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
        [],
    )


# Helm never upgrades a chart's crds/: the chart compares this stamp of each installed CRD with its own
# and fails an install or upgrade over an older CRD (charts/campaign-operator/templates/crd-check.yaml).
SCHEMA_DIGEST_ANNOTATION = "campaign-operator.io/schema-digest"


def schema_digest(crd: dict[str, Any]) -> str:
    """sha256 of the CRD's spec as canonical JSON: changes with the schema, names or columns, only."""
    canonical = json.dumps(crd["spec"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def stamped(crd: dict[str, Any]) -> dict[str, Any]:
    """The CRD with its schema digest annotated (metadata only: the digest covers the spec)."""
    metadata = {**crd["metadata"], "annotations": {SCHEMA_DIGEST_ANNOTATION: schema_digest(crd)}}
    return {**crd, "metadata": metadata}


def render() -> dict[str, str]:
    """File name -> YAML text of every generated CRD, each stamped with its schema digest."""
    out = {}
    for crd in (stamped(campaign_crd()), stamped(trial_crd())):
        text = yaml.safe_dump(crd, sort_keys=False, width=100, allow_unicode=True)
        header = "# GENERATED by `make crds` from operator/campaign_operator/api; do not edit.\n"
        out[f"{crd['metadata']['name']}.yaml"] = header + text
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0] if args else "crds")
    target.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (target / name).write_text(text)
        print(f"wrote {target / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
