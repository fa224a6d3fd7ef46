from __future__ import annotations

import os
from pathlib import Path

import pytest

from campaign_operator.api.campaign import CampaignState, TrainingCampaignStatus, TrialCounts
from campaign_operator.api.common import TrialState
from campaign_operator.embedded.store import LeaseHeld, Store, StoreError, runner_note

from .helpers import T0, trial

pytestmark = pytest.mark.unit


def test_trials_round_trip_in_creation_order(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        a = trial(
            "c-p-b", history=[(1, {"val_loss": 0.5}), (2, {"val_loss": 0.25})], attempt=1, start_time=T0
        )
        b = trial(
            "c-p-a", state=TrialState.SKIPPED, reason="BeforeListing", params={"x": [1, 2], "y": {"z": 1}}
        )
        assert store.insert_trial(a) and store.insert_trial(b)
        assert not store.insert_trial(a)  # creation is idempotent
        got = store.trials()
    assert [t.name for t in got] == ["c-p-b", "c-p-a"]
    assert got[0] == a and got[1] == b


def test_update_and_status_round_trip(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        t = trial()
        store.insert_trial(t)
        running = t.model_copy(update={"status": t.status.model_copy(update={"state": TrialState.RUNNING})})
        store.update_trial(running)
        assert store.trial(t.name) == running
        status = TrainingCampaignStatus(state=CampaignState.RUNNING, trials=TrialCounts(total=1, running=1))
        store.put_status(status)
        store.put_manifest({"metadata": {"name": "c"}})
    with Store(tmp_path, readonly=True) as ro:
        assert ro.status() == status
        assert ro.manifest() == {"metadata": {"name": "c"}}
        assert ro.trial(t.name) == running


def test_update_of_unknown_trial_is_an_error(tmp_path: Path) -> None:
    with Store(tmp_path) as store, pytest.raises(StoreError):
        store.update_trial(trial("nope"))


def test_events_attempts_offsets(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        for i in range(5):
            store.add_event("Normal", f"R{i}", f"m{i}", T0)
        store.record_attempt("t", 1, "start")
        store.record_attempt("t", 1, "resume")
        with store.transaction():
            store.set_offset("trials/t/attempt-1.jsonl", 42)
        assert [e.reason for e in store.events(limit=2)] == ["R3", "R4"]
        assert [(a.trial, a.attempt, a.kind) for a in store.attempts()] == [
            ("t", 1, "start"),
            ("t", 1, "resume"),
        ]
        assert store.offset("trials/t/attempt-1.jsonl") == 42
        assert store.offset("other") == 0


def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        with pytest.raises(RuntimeError), store.transaction():
            store.set_offset("f", 10)
            raise RuntimeError("crash between the two writes")
        assert store.offset("f") == 0


def test_second_writer_is_refused_and_named(tmp_path: Path) -> None:
    first = Store(tmp_path)
    first.acquire_lease()
    second = Store(tmp_path)
    with pytest.raises(LeaseHeld) as err:
        second.acquire_lease()
    assert f"pid {os.getpid()}" in str(err.value)
    assert runner_note(second, terminal=False) == f"runner pid {os.getpid()}"
    first.close()
    second.acquire_lease()  # released: the next runner may take over
    second.close()
    with Store(tmp_path, readonly=True) as ro:
        assert ro.lease() is None
        assert "no runner" in runner_note(ro, terminal=False)


def test_readonly_store_needs_state(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        Store(tmp_path / "missing", readonly=True)
