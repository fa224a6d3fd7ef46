import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaign_operator.api import Phase
from campaign_operator.planner.sweeps import count_points, expand

pytestmark = pytest.mark.unit


def phase(sweep):
    return Phase.model_validate({"name": "p", "sweep": sweep})


def test_grid_is_the_cartesian_product_in_declaration_order():
    pts = [p.params for p in expand(phase({"grid": {"alpha": [0.2, 0.3], "hidden_dims": [[64], [128, 64]]}}))]
    assert pts == [
        {"alpha": 0.2, "hidden_dims": [64]},
        {"alpha": 0.2, "hidden_dims": [128, 64]},
        {"alpha": 0.3, "hidden_dims": [64]},
        {"alpha": 0.3, "hidden_dims": [128, 64]},
    ]


def test_matrix_exclude_and_include():
    sweep = {
        "matrix": {
            "axes": {"symbol": ["A", "B"], "window": [1, 2]},
            "exclude": [{"symbol": "B", "window": 1}],
            "include": [{"symbol": "C", "window": 9}],
        }
    }
    pts = [p.params for p in expand(phase(sweep))]
    assert pts == [
        {"symbol": "A", "window": 1},
        {"symbol": "A", "window": 2},
        {"symbol": "B", "window": 2},
        {"symbol": "C", "window": 9},
    ]


def test_seeds():
    pts = expand(phase({"seeds": {"start": 42, "count": 20}}))
    assert [p.params["seed"] for p in pts] == list(range(42, 62))


def test_duplicate_explicit_trials_collapse():
    pts = expand(phase({"trials": [{"a": 1, "b": 2}, {"b": 2, "a": 1}, {"a": 2}]}))
    assert [p.params for p in pts] == [{"a": 1, "b": 2}, {"a": 2}]
    assert [p.index for p in pts] == [0, 1]


def test_random_search_is_reproducible_and_in_range():
    sweep = {
        "random": {
            "samples": 50,
            "seed": 7,
            "space": {
                "lr": {"logUniform": [1e-5, 1e-2]},
                "dropout": {"uniform": [0.0, 0.5]},
                "layers": {"intUniform": [1, 4]},
                "act": {"choice": ["relu", "gelu"]},
            },
        }
    }
    a, b = expand(phase(sweep)), expand(phase(sweep))
    assert [p.params for p in a] == [p.params for p in b]
    for p in a:
        assert 1e-5 <= p.params["lr"] < 1e-2
        assert 0.0 <= p.params["dropout"] < 0.5
        assert p.params["layers"] in {1, 2, 3, 4}
        assert p.params["act"] in {"relu", "gelu"}
    other = expand(phase({**sweep, "random": {**sweep["random"], "seed": 8}}))
    assert [p.params for p in other] != [p.params for p in a]


def test_no_sweep_is_one_trial():
    assert [p.params for p in expand(phase(None))] == [{}]


@given(
    st.dictionaries(st.sampled_from("abcd"), st.lists(st.integers(0, 3), min_size=1, max_size=4), min_size=1)
)
def test_count_points_bounds_expansion(grid):
    p = phase({"grid": grid})
    pts = expand(p)
    assert len(pts) <= count_points(p.sweep)
    assert len({p.key for p in pts}) == len(pts)
