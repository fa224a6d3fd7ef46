"""Reading manifests the way `kubectl apply` does, without a cluster.

`parse_manifests` turns multi-document YAML (or JSON) into plain dicts; `parse_campaign` judges one
document as a TrainingCampaign the way the apiserver does (apiVersion/kind, the model types, the
CRDs' CEL rules), raising `SpecError` with every problem found.

The YAML loader resolves plain scalars like Kubernetes (Go YAML into JSON) does, not like PyYAML's
YAML 1.1 resolver:

- `1e-4`, `3E5` are floats (PyYAML makes them strings, so `lr: 1e-4` would silently become "1e-4");
- `2022-05-17` stays a string (PyYAML makes a `datetime.date`, which JSON and CEL cannot carry;
  Kubernetes keeps it a string, and ISO dates compare correctly as strings in CEL);
- `1:30` stays a string (no YAML 1.1 base-60 integers);
- a mapping with the same key twice is an error (kubectl's strict field validation rejects it;
  PyYAML would silently keep the last value).
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from yaml.nodes import MappingNode

from .base import API_VERSION, GROUP
from .campaign import TrainingCampaign
from .validation import SpecError, parse_model

_FLOAT = re.compile(
    r"""^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
    |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_INT = re.compile(
    r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+)$""",
    re.X,
)
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_DROPPED_TAGS = {_INT_TAG, _FLOAT_TAG, "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value"}


class KubernetesYamlLoader(yaml.SafeLoader):
    """SafeLoader with Kubernetes' scalar resolution (see the module docstring)."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` may be overridden, not duplicated
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r} (first at line {seen[key].line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


KubernetesYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
KubernetesYamlLoader.add_implicit_resolver(_FLOAT_TAG, _FLOAT, list("-+0123456789."))
KubernetesYamlLoader.add_implicit_resolver(_INT_TAG, _INT, list("-+0123456789"))


def _yaml_error(err: yaml.YAMLError) -> SpecError:
    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        context = f" ({err.context})" if err.context else ""
        return SpecError(
            [f"line {mark.line + 1}, column {mark.column + 1}: not valid YAML: {err.problem}{context}"]
        )
    return SpecError([f"not valid YAML: {' '.join(str(err).split())}"])


def parse_manifests(text: str) -> list[dict[str, Any]]:
    """Every object in a multi-document YAML or JSON text; `kind: List` is flattened, empty documents
    are dropped. Raises SpecError for syntax errors and documents that are not objects."""
    stripped = text.lstrip()
    docs: list[Any]
    if stripped.startswith(("{", "[")):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as e:
            raise SpecError([f"not valid JSON: line {e.lineno}, column {e.colno}: {e.msg}"]) from None
        docs = loaded if isinstance(loaded, list) else [loaded]
    else:
        try:
            docs = list(yaml.load_all(text, Loader=KubernetesYamlLoader))  # a SafeLoader subclass
        except yaml.YAMLError as e:
            raise _yaml_error(e) from None
    out: list[dict[str, Any]] = []
    problems: list[str] = []
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            problems.append(f"document {i + 1}: expected an object (apiVersion, kind, ...), got {doc!r:.60}")
        elif doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            out.extend(item for item in doc["items"] if isinstance(item, dict))
        else:
            out.append(doc)
    if problems:
        raise SpecError(problems)
    return out


_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _header_problems(doc: dict[str, Any]) -> list[str]:
    """What the apiserver checks before the schema: apiVersion, kind, metadata.name."""
    problems = []
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if api_version is None:
        problems.append(f"apiVersion: required; set apiVersion: {API_VERSION}")
    elif api_version != API_VERSION:
        hint = "this version is not served" if str(api_version).startswith(f"{GROUP}/") else "wrong API group"
        problems.append(f"apiVersion: {api_version!r} ({hint}); set apiVersion: {API_VERSION}")
    if kind is None:
        problems.append("kind: required; set kind: TrainingCampaign")
    elif kind != "TrainingCampaign":
        problems.append(f"kind: expected TrainingCampaign, got {kind!r}")
    metadata = doc.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not name:
        problems.append("metadata.name: required (a lowercase DNS name, at most 63 characters)")
    elif not _DNS_SUBDOMAIN.match(name):
        problems.append(
            f"metadata.name: invalid value {name!r}: a lowercase RFC 1123 name"
            " (a-z, 0-9, '-', '.'; starting and ending with a letter or digit)"
        )
    return problems


def parse_campaign(doc: dict[str, Any]) -> TrainingCampaign:
    """Judges one manifest as the apiserver would: the header (apiVersion, kind, metadata.name),
    then the schema and the CRD's CEL rules. Raises SpecError listing every problem of the first
    stage that fails, each starting with the offending field's path. The operator's own checks
    come on top: `planner.admission.load_campaign`."""
    problems = _header_problems(doc)
    if problems:
        raise SpecError(problems)
    return parse_model(TrainingCampaign, doc, strict=True)


__all__ = ["KubernetesYamlLoader", "parse_campaign", "parse_manifests"]
