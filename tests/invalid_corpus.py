"""The invalid-manifest corpus (tests/data/invalid), shared by the unit, API-integration and operator
suites: one reader of its `# key: value` headers (see the corpus README)."""

from __future__ import annotations

from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "data" / "invalid"
FILES = sorted(CORPUS.glob("*.yaml"))


def header(path: Path) -> dict[str, str]:
    """The leading `# key: value` comment lines (expect, layer, apiserver-expect, ...)."""
    out = {}
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        key, sep, value = line[1:].strip().partition(":")
        if sep and key.strip().replace("-", "").isalpha():
            out[key.strip()] = value.strip()
    return out
