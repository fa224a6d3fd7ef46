"""crds/ is generated from the models: a test fails when someone forgets `make crds`."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaign_operator.api import crdgen

pytestmark = pytest.mark.unit

CRDS = Path(__file__).resolve().parents[3] / "crds"


def test_checked_in_crds_match_the_models() -> None:
    rendered = crdgen.render()
    on_disk = {p.name: p.read_text() for p in CRDS.glob("*.yaml")}
    assert sorted(on_disk) == sorted(rendered), "crds/ holds other files than crdgen renders"
    stale = [name for name, text in rendered.items() if on_disk[name] != text]
    assert not stale, f"crds/ is stale ({', '.join(stale)}): run `make crds` and commit the result"
