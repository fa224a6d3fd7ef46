"""Reading what the views show from a state directory (the `status`, `results`, `report` commands)."""

from __future__ import annotations

import sqlite3
import time

from campaign_operator.api.campaign import CampaignState, TrainingCampaign, TrainingCampaignStatus
from campaign_operator.report.live import Snapshot
from campaign_operator.report.results import CampaignData

from .store import StateCorrupt, Store, StoreError, runner_note


def read_snapshot(store: Store, attempts: int = 10) -> Snapshot:
    """The views' data; retried briefly while the runner holds the database busy."""
    for attempt in range(attempts):
        try:
            return _read_snapshot(store)
        except sqlite3.OperationalError as e:
            if attempt == attempts - 1:
                raise StoreError(f"{store.path}: cannot be read ({' '.join(str(e).split())})") from None
            time.sleep(0.2)
    raise AssertionError("unreachable")


def _read_snapshot(store: Store) -> Snapshot:
    status = store.status() or TrainingCampaignStatus()
    manifest = store.manifest() or {}
    name = str((manifest.get("metadata") or {}).get("name") or store.dir.name)
    terminal = status.state in (CampaignState.SUCCEEDED, CampaignState.FAILED)
    return Snapshot(
        name=name,
        status=status,
        trials=store.trials(),
        events=store.events(limit=20),
        runner=runner_note(store, terminal),
        runner_alive=(lease := store.lease()) is not None and lease.alive,
        campaign=_campaign_or_none(manifest),
    )


def _campaign_or_none(manifest: dict[str, object]) -> TrainingCampaign | None:
    """The stored manifest for the view's planned totals and banner; a view without them rather than
    none when an older version wrote it."""
    try:
        return TrainingCampaign.model_validate(manifest)
    except ValueError:
        return None


def read_campaign(store: Store) -> CampaignData:
    manifest = store.manifest()
    if manifest is None:
        raise StoreError(f"{store.dir}: no campaign recorded yet")
    try:
        campaign = TrainingCampaign.model_validate(manifest)
    except ValueError as e:
        problem = f"holds a manifest this campaign cannot read ({' '.join(str(e).split())[:200]})"
        raise StateCorrupt(store.path, problem, readonly=store.readonly) from None
    status = store.status() or TrainingCampaignStatus()
    terminal = status.state in (CampaignState.SUCCEEDED, CampaignState.FAILED)
    return CampaignData(campaign, status, store.trials(), None if terminal else runner_note(store, terminal))
