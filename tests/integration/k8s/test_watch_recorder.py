"""The harness's watch recorder (opkit.AddedRecorder) on a real apiserver that is SIGKILLed and
restarted mid-watch: it reconnects, relists and keeps an exact record; when its thread fails, every
read of it fails loudly instead of returning a stale count.

A control plane of its own: the session's must stay up for the other tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from rig.controlplane import ControlPlane

from .opkit import AddedRecorder, Kube, RecorderFailed, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


@pytest.fixture(scope="module")
def own_plane() -> Iterator[ControlPlane]:
    cp = ControlPlane(controller_manager=False)
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()


def create(kube: Kube, name: str) -> dict[str, Any]:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"x": "1"}}
    return kube.ok("POST", CONFIGMAPS, body)


def test_the_recorder_rides_out_apiserver_restarts(own_plane: ControlPlane) -> None:
    """The recorder that came before this one stalled silently here: after the first restart it saw
    nothing more (its watch retried a resourceVersion the new apiserver answered 410 Gone to)."""
    kube = Kube(own_plane)
    created = [create(kube, "before")]
    recorder = AddedRecorder(kube, CONFIGMAPS)
    try:
        for i in range(3):
            watching, restarted = f"watching-{i}", f"restarted-{i}"
            created.append(create(kube, watching))
            wait_for(lambda n=watching: n in recorder.added, 30, f"the recorder to see {watching}")
            own_plane.restart_apiserver()
            # Maybe created before the recorder is back: then its relist is what sees it.
            created.append(create(kube, restarted))
            wait_for(lambda n=restarted: n in recorder.added, 90, f"the recorder to see {restarted}")
            assert recorder.thread.is_alive()
        assert len(recorder.disconnects) >= 3, "the watch never noticed the apiserver going away"
        assert recorder.relists >= 4  # the first list, then one after each restart
    finally:
        recorder.close()
    assert recorder.errors == []
    # Exact: nothing lost, nothing recorded twice.
    assert recorder.added == {o["metadata"]["name"]: {o["metadata"]["uid"]} for o in created}
    assert recorder.total() == 7 and recorder.duplicates() == {}


def test_a_failed_recorder_fails_the_test_that_reads_it(
    own_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube = Kube(own_plane)
    recorder = AddedRecorder(kube, CONFIGMAPS)
    seen = recorder.total()
    record = recorder._record

    def broken(obj: dict[str, Any]) -> None:
        if obj["metadata"]["name"] == "poison":
            raise KeyError("a bug in the recorder")
        record(obj)

    monkeypatch.setattr(recorder, "_record", broken)
    create(kube, "poison")
    recorder.thread.join(timeout=30)
    assert not recorder.thread.is_alive()
    for read in (recorder.total, recorder.duplicates, lambda: recorder.added, recorder.close):
        with pytest.raises(RecorderFailed, match="a bug in the recorder"):
            read()
    assert seen >= 7
