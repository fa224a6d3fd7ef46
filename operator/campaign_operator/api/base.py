"""Shared building blocks for the API models.

Every model here is both the Python type the planner works with and the source the CRDs are
generated from: field docstrings become `description`s (so `kubectl explain` is useful), pydantic
defaults become schema defaults, and `CelRule`s become `x-kubernetes-validations`. Embedded mode
evaluates the very same CEL rules with cel-python, so a manifest is judged the same way with or
without a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

GROUP = "training.campaign-operator.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# DNS-1123 label (what Kubernetes requires for label values and most names).
DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
# metav1.Condition reason syntax.
CAMEL_CASE = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
# Reasons users write (stop rules, skip rules): UpperCamelCase, which is also a valid condition reason.
USER_REASON = r"^[A-Z][A-Za-z0-9]*$"


@dataclass(frozen=True)
class CelRule:
    """A cross-field rule, written once in CEL (the Kubernetes dialect, standard macros only)."""

    rule: str
    message: str
    # JSONPath-like path relative to the node the rule sits on, e.g. ".phases"; used by the
    # apiserver (fieldPath) and by embedded validation to name the offending field.
    field_path: str = ""
    # The same rule for cel-python where the Kubernetes form uses something it lacks (two-variable
    # comprehensions). The CRD-vs-embedded agreement test covers every rule that sets this.
    embedded: str | None = None

    @property
    def embedded_rule(self) -> str:
        return self.embedded or self.rule


@dataclass(frozen=True)
class ExactlyOne:
    """Exactly one of these fields must be set.

    Emitted as OpenAPI `oneOf`/`required` rather than CEL: Kubernetes CEL cannot see untyped
    (preserve-unknown) fields such as sweep values, so `has(self.grid)` would not compile.
    """

    fields: tuple[str, ...]
    message: str


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are an error, not silently lost."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        validate_default=True,
    )

    cel_rules: ClassVar[tuple[CelRule, ...]] = ()
    exactly_one: ClassVar[ExactlyOne | None] = None

    def to_wire(self) -> dict[str, object]:
        """The manifest form: camelCase keys, unset optionals omitted."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")
