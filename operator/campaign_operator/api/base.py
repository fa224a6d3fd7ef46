"""Shared building blocks for the API models.

Every model here is both the Python type the planner works with and the source the CRDs are
generated from: field docstrings become `description`s (so `kubectl explain` is useful), pydantic
defaults become schema defaults, and `CelRule`s become `x-kubernetes-validations`. Embedded mode
evaluates the very same CEL rules with cel-python, so a manifest is judged the same way with or
without a cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel

GROUP = "training.campaign-operator.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
TRIALS, CAMPAIGNS = "campaigntrials", "trainingcampaigns"
"""Plurals. The Trial kind's plural is not `trials`: Katib's `trials.kubeflow.org` owns that name,
and next to it `kubectl get trials` would silently pick one of the two groups."""

# DNS-1123 label (what Kubernetes requires for label values and most names).
DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
# metav1.Condition reason syntax.
CAMEL_CASE = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
# Reasons users write (stop rules, skip rules): UpperCamelCase, which is also a valid condition reason.
USER_REASON = r"^[A-Z][A-Za-z0-9]*$"

TEXT_MAX_LENGTH = 4096
"""The CRDs' bound on a string that sets none of its own (crdgen), status messages included."""
MESSAGE_BUDGET = 1024
"""What one status message should say at most: the problems that matter, not a dump."""
_ELLIPSIS = " …"


def bounded(text: str, limit: int = TEXT_MAX_LENGTH) -> str:
    """`text` cut to at most `limit` characters (what a CRD's maxLength counts), marked where cut.

    The one truncation every status string goes through, so no status write exceeds a CRD bound:
    messages put the most important part first, so the head is what to keep.
    """
    if len(text) <= limit:
        return text
    if limit <= len(_ELLIPSIS):
        return text[:limit]
    return text[: limit - len(_ELLIPSIS)].rstrip() + _ELLIPSIS


def cutter(limit: int) -> Callable[[Any], Any]:
    """`bounded` for a field validator/serializer: strings are cut to `limit`, others pass."""

    def cut(value: Any) -> Any:
        return bounded(value, limit) if isinstance(value, str) else value

    return cut


CONDITION_MESSAGE_MAX_LENGTH = 32768
"""metav1.Condition's bound on message."""

# Cut when set from data and again when written out: the schema's maxLength and the truncation come
# from the same number, so no status write can exceed it.
BoundedText = Annotated[  # a status string (message, reason)
    str,
    BeforeValidator(cutter(TEXT_MAX_LENGTH)),
    PlainSerializer(cutter(TEXT_MAX_LENGTH)),
    Field(max_length=TEXT_MAX_LENGTH),
]
ConditionMessage = Annotated[  # metav1.Condition.message
    str,
    BeforeValidator(cutter(CONDITION_MESSAGE_MAX_LENGTH)),
    PlainSerializer(cutter(CONDITION_MESSAGE_MAX_LENGTH)),
    Field(max_length=CONDITION_MESSAGE_MAX_LENGTH),
]


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
    # A message naming the culprits, for the apiserver (x-kubernetes-validations messageExpression,
    # Kubernetes CEL) and, as the same text computed in Python from the node's wire form, for
    # embedded validation. Set both or neither; an integration test compares the two.
    message_expression: str | None = None
    explain: Callable[[Any], str] | None = None

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
