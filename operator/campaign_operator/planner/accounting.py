"""Failure-rate arithmetic: failed / (total - skipped), with exact threshold comparisons."""

from __future__ import annotations

from fractions import Fraction


def _threshold(max_failure_rate: float) -> Fraction:
    # 0.15 must mean 15/100 exactly, not the binary float just above or below it.
    return Fraction(str(max_failure_rate))


def failure_rate(failed: int, total: int, skipped: int) -> float:
    """Skipped trials are not failures and leave the denominator; nothing to run means 0."""
    denominator = total - skipped
    return failed / denominator if denominator > 0 else 0.0


def exceeds(failed: int, total: int, skipped: int, max_failure_rate: float) -> bool:
    """True when failed / (total - skipped) is above the threshold.

    The final-rate rule, and also fail-fast's test on the failures so far: failures never go away
    and skips are decided when trials are created, so once the failures alone exceed the threshold
    the final rate must too.
    """
    denominator = total - skipped
    if denominator <= 0:
        return False
    return Fraction(failed, denominator) > _threshold(max_failure_rate)


def max_failures_allowed(total: int, skipped: int, max_failure_rate: float) -> int:
    """The largest failure count the threshold tolerates."""
    denominator = max(total - skipped, 0)
    return int(_threshold(max_failure_rate) * denominator)
