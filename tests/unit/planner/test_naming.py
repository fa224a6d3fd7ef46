import json
import re
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaign_operator.planner.naming import RAYJOB_NAME_LIMIT, job_name, trial_name

pytestmark = pytest.mark.unit

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
names = st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,60}[a-z0-9])?", fullmatch=True)
scalars = st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=8), st.booleans())
points = st.dictionaries(st.text(min_size=1, max_size=6), scalars, max_size=4)


@given(names, st.from_regex(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?", fullmatch=True), points)
def test_names_are_dns_1035_and_short_enough_for_rayjobs(campaign, phase, point):
    name = trial_name(campaign, phase, point)
    assert DNS_1035.match(name), name
    assert len(job_name(name, 99)) <= RAYJOB_NAME_LIMIT


@given(names, st.lists(points, min_size=2, max_size=30, unique_by=lambda p: json.dumps(p, sort_keys=True)))
def test_distinct_points_get_distinct_names(campaign, pts):
    assert len({trial_name(campaign, "p", p) for p in pts}) == len(pts)


def test_names_do_not_depend_on_key_order():
    assert trial_name("c", "p", {"a": 1, "b": [1, 2]}) == trial_name("c", "p", {"b": [1, 2], "a": 1})


def test_names_are_stable_across_processes():
    # Hash randomisation differs per process; names must not.
    cases = [("nba-deep", "exploration", {"alpha": 0.25, "hidden_dims": [256, 128, 64]}), ("x", "y", {})]
    code = (
        "import json,sys; from campaign_operator.planner.naming import trial_name;"
        "print(json.dumps([trial_name(*c) for c in json.loads(sys.argv[1])]))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code, json.dumps(cases)],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1
    assert json.loads(outputs.pop()) == [trial_name(*c) for c in cases]


def test_long_and_numeric_campaign_names_are_made_valid():
    name = trial_name("2026-" + "x" * 200, "phase", {"a": 1})
    assert DNS_1035.match(name) and name.startswith("t2026-")


def test_a_number_is_named_as_the_apiserver_stores_it():
    """JSON has one number type: the 100.0 of a manifest comes back from the apiserver as 100, so the
    same manifest's trials have the same names embedded and on a cluster."""
    assert trial_name("c", "p", {"lr": 100.0, "dims": [64.0, 32]}) == trial_name(
        "c", "p", {"lr": 100, "dims": [64, 32]}
    )
    assert trial_name("c", "p", {"lr": 0.5}) != trial_name("c", "p", {"lr": 0.25})
    assert trial_name("c", "p", {"flag": True}) != trial_name("c", "p", {"flag": 1})
