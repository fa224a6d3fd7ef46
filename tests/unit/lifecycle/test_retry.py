from __future__ import annotations

import pytest

from campaign_operator.lifecycle.retry import backoff_delays, retry_after

pytestmark = pytest.mark.unit


def test_backoff_grows_and_is_capped() -> None:
    d = backoff_delays(6, base=0.5, cap=4.0, jitter=0.0)
    assert d == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert backoff_delays(1) == []


def test_the_servers_retry_after_wins_when_it_sends_whole_seconds() -> None:
    assert retry_after({"Retry-After": "3"}, 0.5) == 3.0
    assert retry_after({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, 0.5) == 0.5
    assert retry_after(None, 0.25) == 0.25
