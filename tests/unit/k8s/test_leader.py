"""The leader Lease's pure decision: when a replica may write itself in."""

from __future__ import annotations

import pytest

from campaign_operator.k8s.leader import Observed, Timing, claim

pytestmark = pytest.mark.unit

T = Timing.for_lease(15)


def seen(holder: str, since: float, duration: int = 15) -> Observed:
    return Observed({"holderIdentity": holder, "leaseDurationSeconds": duration}, "1", since)


def test_no_lease_an_own_lease_or_a_released_one_can_be_taken() -> None:
    assert claim(None, "b", 0.0, T)
    assert claim(seen("b", 100.0), "b", 100.5, T)
    assert claim(seen("", 100.0), "b", 100.5, T)


def test_another_holders_lease_only_after_it_stayed_unchanged_for_its_duration() -> None:
    assert not claim(seen("a", 100.0), "b", 114.9, T)
    assert claim(seen("a", 100.0), "b", 115.0, T)
    assert not claim(seen("a", 100.0, duration=60), "b", 115.0, T)  # the holder's duration counts


def test_controller_runtime_proportions() -> None:
    assert (T.lease_s, T.renew_deadline_s, T.retry_s) == (15, 10, 2)
    assert Timing.for_lease(6).renew_deadline_s == 4 and Timing.for_lease(6).retry_s == 1.0
