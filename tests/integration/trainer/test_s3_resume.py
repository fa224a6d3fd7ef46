"""Preemption story on a real S3 wire protocol: moto's server over HTTP, the trainer as a subprocess,
SIGKILL after checkpoints landed, restart with the same identity, resume from the saved epoch."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from campaign_trainer.checkpoints import newest, parse_epoch
from campaign_trainer.data import synthetic

from .conftest import trial

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUCKET = "campaign-ckpt"
EPOCHS = 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_env() -> Iterator[dict[str, str]]:
    port = free_port()
    moto = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": endpoint,
    }
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.2)
    yield env
    proc.terminate()
    proc.wait(timeout=10)


def s3(env: dict[str, str]) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL_S3"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def checkpoint_names(client: Any, prefix: str) -> list[str]:
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    # directly under the prefix: the outputs/ beside the checkpoints are not checkpoints
    names = [o["Key"][len(prefix) :] for o in listing.get("Contents", [])]
    return sorted(n for n in names if "/" not in n)


def start(trial_file: Path, progress: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "campaign_trainer",
        "run",
        "--trial",
        str(trial_file),
        "--reporter",
        f"jsonl:{progress}",
    ]
    return subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_sigkill_then_resume_from_s3_checkpoint(s3_env: dict[str, str], tmp_path: Path) -> None:
    client = s3(s3_env)
    client.create_bucket(Bucket=BUCKET)
    # The dataset comes from S3 too (Parquet over the same endpoint).
    arrays = synthetic.regression(4096, 5)
    df = pd.DataFrame(arrays["x"], columns=[f"f{i}" for i in range(arrays["x"].shape[1])]).assign(
        y=arrays["y"]
    )
    buf = io.BytesIO()
    df.to_parquet(buf)
    client.put_object(Bucket=BUCKET, Key="data/train.parquet", Body=buf.getvalue())

    name = "resume-me"
    prefix = f"trials/{name}/"
    doc = trial(
        name,
        "regression",
        epochs=EPOCHS,
        batchSize=64,
        parameters={"seed": 3, "lr": 1e-3, "hidden_dims": [64, 64]},
        dataset={"path": f"s3://{BUCKET}/data/train.parquet", "target": "y"},
        checkpoint={"uri": f"s3://{BUCKET}/{prefix.rstrip('/')}", "everyEpochs": 1, "keep": 2},
    )
    trial_file = tmp_path / "trial.yaml"
    trial_file.write_text(yaml.safe_dump(doc))

    first_progress = tmp_path / "first.jsonl"
    proc = start(trial_file, first_progress, s3_env)
    try:
        deadline = time.monotonic() + 240
        while True:
            latest = newest(checkpoint_names(client, prefix))
            if latest is not None and latest[0] >= 3:  # at least three saved (keep=2 retains two)
                break
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "no checkpoints appeared"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    saved = checkpoint_names(client, prefix)
    saved_epoch = max(e for n in saved if (e := parse_epoch(n)) is not None)
    # keep=2, but pruning follows the upload of the newest, so a kill in between may leave three.
    assert saved_epoch < EPOCHS and len(saved) <= 3
    first = lines(first_progress)
    assert first and all(line["type"] == "epoch" for line in first)  # killed: no outcome from it
    assert first[-1]["epoch"] >= saved_epoch

    second_progress = tmp_path / "second.jsonl"
    proc2 = start(trial_file, second_progress, s3_env)
    out, _ = proc2.communicate(timeout=300)
    assert proc2.returncode == 0, out.decode()[-3000:]
    second = lines(second_progress)
    epochs = [line["epoch"] for line in second if line["type"] == "epoch"]
    assert epochs == list(range(saved_epoch + 1, EPOCHS + 1))  # resumed, not restarted at epoch 1
    outcome = second[-1]
    assert outcome["type"] == "outcome" and outcome["resumedFromEpoch"] == saved_epoch
    status = outcome["status"]
    assert (status["state"], status["reason"], status["epoch"]) == ("Succeeded", "Completed", EPOCHS)
    # the history from before the kill travelled in the checkpoint
    assert [h["epoch"] for h in status["history"]] == list(range(1, EPOCHS + 1))
    # model + optimizer state came back: the first resumed epoch trains like a late epoch, not a fresh one
    first_loss = first[0]["metrics"]["loss"]
    assert second[0]["metrics"]["loss"] < 0.8 * first_loss
    assert status["checkpoint"] == f"s3://{BUCKET}/{prefix}epoch-{EPOCHS:06d}.ckpt"
    assert checkpoint_names(client, prefix) == [f"epoch-{EPOCHS - 1:06d}.ckpt", f"epoch-{EPOCHS:06d}.ckpt"]
    assert status["outputs"] == f"s3://{BUCKET}/{prefix}outputs"  # published once it succeeded
