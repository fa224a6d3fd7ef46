from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from campaign_operator.planner import accounting

pytestmark = pytest.mark.unit

rates = st.sampled_from([0.0, 0.01, 0.05, 0.1, 0.15, 0.2, 1 / 3, 0.5, 0.999, 1.0])


@given(st.integers(0, 500), st.integers(0, 500), st.integers(0, 500))
def test_failure_rate_excludes_skipped(failed, skipped, others):
    total = failed + skipped + others
    rate = accounting.failure_rate(failed, total, skipped)
    if total - skipped == 0:
        assert rate == 0.0
    else:
        assert rate == pytest.approx(failed / (failed + others))


def test_threshold_is_exact_at_the_boundary():
    # 15 of 100 is exactly 15%: allowed. Binary floats must not tip it over.
    assert not accounting.exceeds(15, 100, 0, 0.15)
    assert accounting.exceeds(16, 100, 0, 0.15)
    assert not accounting.exceeds(90, 624, 24, 0.15)  # 90/600 = 15%
    assert accounting.max_failures_allowed(624, 24, 0.15) == 90
    assert not accounting.exceeds(0, 0, 0, 0.0)


@given(
    st.lists(st.sampled_from(["ok", "fail"]), min_size=1, max_size=60),
    st.integers(0, 20),
    rates,
    st.data(),
)
def test_fail_fast_agrees_with_the_final_rate_rule(outcomes, skipped, rate, data):
    """Once fail-fast fires on a prefix, every possible completion fails the final rule."""
    total = len(outcomes) + skipped
    prefix = data.draw(st.integers(0, len(outcomes)))
    failed_so_far = outcomes[:prefix].count("fail")
    assume(accounting.exceeds(failed_so_far, total, skipped, rate))  # fail-fast fires on the prefix
    # The kindest completion: everything left succeeds.
    assert accounting.exceeds(failed_so_far, total, skipped, rate)
    # And the actual completion, whatever it is: failures only accumulate.
    assert accounting.exceeds(failed_so_far + outcomes[prefix:].count("fail"), total, skipped, rate)


@given(st.integers(0, 300), st.integers(1, 300), rates)
def test_exceeds_matches_exact_arithmetic(failed, denominator, rate):
    assume(failed <= denominator)
    assert accounting.exceeds(failed, denominator, 0, rate) == (
        Fraction(failed, denominator) > Fraction(str(rate))
    )
    allowed = accounting.max_failures_allowed(denominator, 0, rate)
    assert not accounting.exceeds(allowed, denominator, 0, rate)
    assert allowed == denominator or accounting.exceeds(allowed + 1, denominator, 0, rate)
