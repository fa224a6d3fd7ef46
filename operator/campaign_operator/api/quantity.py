"""Kubernetes memory quantities (Resources.memory's pattern: 4Gi, 512M, 1000) in bytes."""

from __future__ import annotations

import re

_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_UNITS |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")


def quantity_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity in bytes."""
    m = _QUANTITY.match(quantity)
    if m is None:
        raise ValueError(f"not a memory quantity: {quantity!r} (e.g. 4Gi)")
    return int(float(m.group(1)) * _UNITS[m.group(2) or ""])


def gibibytes(n: int) -> str:
    """Bytes as a whole-Gi quantity, rounded down (at least 1Gi): what a scaled-down request gets."""
    return f"{max(1, n // 2**30)}Gi"
