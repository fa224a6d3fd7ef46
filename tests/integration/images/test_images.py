"""The images of hack/build-images.sh, as the local cluster uses them: its output lines, the OCI
archives the rig imports (names, configs, layers), content-addressed caching, and the images run in
throwaway containers (buildah, root) the way their pods run them. Builds what is missing: the trainer
image takes ~10 min cold, then comes from the cache (${CAMPAIGN_CACHE}/images)."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "hack" / "build-images.sh"
PT_INTERP = 3


def build(*names: str, env: dict[str, str] | None = None, repo: Path = REPO) -> dict[str, tuple[str, Path]]:
    """hack/build-images.sh NAME... -> {name: (ref, archive)}; stdout must be exactly one line per name."""
    out = subprocess.run(
        ["bash", str(repo / "hack" / "build-images.sh"), *names],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        check=False,
    )
    assert out.returncode == 0, f"hack/build-images.sh {' '.join(names)} exited {out.returncode}"
    rows = [line.split(" ") for line in out.stdout.splitlines()]
    assert [row[0] for row in rows] == list(names), out.stdout
    assert all(len(row) == 3 for row in rows), out.stdout
    return {name: (ref, Path(archive)) for name, ref, archive in rows}


def run_in(name: str, *command: str) -> str:
    """COMMAND in a throwaway container of image NAME, as the image's user; its stdout."""
    out = subprocess.run(
        ["bash", str(SCRIPT), "run", name, *command],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert out.returncode == 0, f"{command} in {name} exited {out.returncode}:\n{out.stderr[-4000:]}"
    return out.stdout


class Archive:
    """An OCI archive as `buildah push oci-archive:` writes it (one image)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        index = self.json("index.json")
        [self.descriptor] = index["manifests"]
        self.manifest = self.blob(self.descriptor["digest"])
        self.config = self.blob(self.manifest["config"]["digest"])

    def json(self, member: str) -> Any:
        return json.loads(self.read(member))

    def read(self, member: str) -> bytes:
        with tarfile.open(self.path) as tar:
            f = tar.extractfile(member)
            assert f is not None, member
            return f.read()

    def blob(self, digest: str) -> Any:
        return self.json("blobs/sha256/" + digest.removeprefix("sha256:"))

    @property
    def ref_name(self) -> str:
        return str(self.descriptor["annotations"]["org.opencontainers.image.ref.name"])

    @property
    def layer_digests(self) -> list[str]:
        return [layer["digest"] for layer in self.manifest["layers"]]

    def layer(self, index: int) -> tarfile.TarFile:
        digest = self.manifest["layers"][index]["digest"].removeprefix("sha256:")
        return tarfile.open(fileobj=io.BytesIO(gzip.decompress(self.read(f"blobs/sha256/{digest}"))))

    def history(self) -> str:
        return "\n".join(h.get("created_by", "") for h in self.config["history"])


def program_header_types(elf: bytes) -> list[int]:
    """The p_type of each program header of a 64-bit little-endian ELF file."""
    assert elf[:5] == b"\x7fELF\x02", "not a 64-bit ELF file"
    phoff = int.from_bytes(elf[32:40], "little")
    size, count = int.from_bytes(elf[54:56], "little"), int.from_bytes(elf[56:58], "little")
    return [int.from_bytes(elf[phoff + i * size : phoff + i * size + 4], "little") for i in range(count)]


def test_pause_is_a_static_binary_under_the_sandbox_tag_and_stops_on_sigterm(tmp_path: Path) -> None:
    ref, path = build("pause")["pause"]
    assert ref == "localhost/campaign-pause:3.10"  # the rig's containerd sandbox_image
    assert re.fullmatch(r"pause-[0-9a-f]{12}\.oci\.tar", path.name)
    archive = Archive(path)
    assert archive.ref_name == ref  # what `ctr images import` names the image
    assert archive.config["config"]["Entrypoint"] == ["/pause"]
    assert archive.config["config"]["User"] == "65535:65535"
    assert len(archive.layer_digests) == 1
    members = archive.layer(0)
    assert [m.name for m in members.getmembers() if m.isfile()] == ["pause"]
    members.extract("pause", tmp_path, filter="tar")
    binary = tmp_path / "pause"
    assert PT_INTERP not in program_header_types(binary.read_bytes()), "pause needs a dynamic loader"

    proc = subprocess.Popen([str(binary)])
    time.sleep(0.3)
    assert proc.poll() is None, "pause exited on its own"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=5) == 0


def test_a_second_run_builds_nothing() -> None:
    first = build("pause")["pause"]
    mtime = first[1].stat().st_mtime_ns
    assert build("pause")["pause"] == first
    assert first[1].stat().st_mtime_ns == mtime


def test_operator_image_runs_as_uid_10001_and_keeps_no_build_settings() -> None:
    ref, path = build("operator")["operator"]
    assert re.fullmatch(r"localhost/campaign-operator:[0-9a-f]{12}", ref)
    archive = Archive(path)
    assert archive.ref_name == ref
    config = archive.config["config"]
    assert (config["User"], config["Entrypoint"], config["Cmd"]) == (
        "10001:10001",
        ["campaign-operator"],
        ["--all-namespaces"],
    )
    # The host's index settings travel as a build secret: neither in the history nor in a layer.
    history = archive.history()
    assert not re.search(r"^\|\d+ ", history, re.MULTILINE), history  # how build args are recorded
    host = {v for k, v in os.environ.items() if k.startswith(("PIP_", "UV_")) and len(v) > 3}
    assert not {v for v in host if v in history}, history
    for i in range(len(archive.layer_digests)):
        names = {m.name for m in archive.layer(i).getmembers() if m.isfile()}
        assert not {n for n in names if n.startswith(("run/secrets/", "root/.cache/"))}, names

    out = run_in("operator", "sh", "-c", "id -u; id -g; campaign-operator --help")
    uid, gid, *usage = out.splitlines()
    assert (uid, gid) == ("10001", "10001")
    assert "Usage" in "\n".join(usage)


def test_trainer_login_shell_as_kuberay_starts_it_finds_the_venv_and_wget() -> None:
    ref, path = build("trainer")["trainer"]
    assert re.fullmatch(r"localhost/campaign-trainer:[0-9a-f]{12}", ref)
    config = Archive(path).config["config"]
    assert config["User"] == "1000:100"
    assert {"RAY_USAGE_STATS_ENABLED=0", "RAY_ENABLE_UV_RUN_RUNTIME_ENV=0"} <= set(config["Env"])
    # KubeRay's container command: a login shell, which rebuilds PATH from /etc/profile.
    out = run_in(
        "trainer", "/bin/bash", "-lc", "--", "id -un; id -u; id -g; echo $HOME; command -v ray python wget"
    )
    assert out.split() == [
        *("ray", "1000", "100", "/home/ray"),
        *("/opt/venv/bin/ray", "/opt/venv/bin/python", "/usr/bin/wget"),
    ]


def test_every_built_in_task_loads_in_the_trainer_image() -> None:
    """Each task's own libraries load as the ray user, system libraries included (LightGBM needs the
    system's libgomp.so.1, which a minimal base lacks and torch's wheel does not provide by that name)."""
    build("trainer")
    script = (
        "from campaign_operator.api.common import BUILTIN_TASKS; "
        "from campaign_trainer.tasks import resolve_task; "
        "import lightgbm; "
        "print('loaded', *sorted(t for t in BUILTIN_TASKS if resolve_task(t)))"
    )
    out = run_in("trainer", "/bin/bash", "-lc", "--", f'python -c "{script}"')
    from campaign_operator.api.common import BUILTIN_TASKS

    assert out.split()[-len(BUILTIN_TASKS) - 1 :] == ["loaded", *sorted(BUILTIN_TASKS)], out


def test_ray_head_starts_in_the_trainer_image_and_runs_a_task() -> None:
    build("trainer")
    script = (
        "ulimit -n 65536; "  # as KubeRay does; refused without privilege, and Ray copes
        "ray start --head --node-ip-address=127.0.0.1 --num-cpus=1 --include-dashboard=false "
        "--disable-usage-stats >&2 || exit 1; "
        "python -c \"import ray; ray.init(address='auto'); "
        "print('answer', ray.get(ray.remote(lambda: 42).remote()))\"; "
        "status=$?; ray stop --force >&2; exit $status"
    )
    out = run_in("trainer", "/bin/bash", "-lc", "--", script)
    assert "answer 42" in out.splitlines()


def test_a_source_change_rebuilds_only_the_code_layers(tmp_path: Path) -> None:
    """A copy of the repo's image inputs with one trainer file changed: a new tag, the same dependency
    layers. A private cache, seeded with the base archive, keeps the shared archives untouched."""
    base_ref, base_archive = build("base")["base"]
    cache = tmp_path / "cache"
    (cache / "images").mkdir(parents=True)
    shutil.copy2(base_archive, cache / "images" / base_archive.name)
    copy = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for tree in ("hack", "requirements", "operator/campaign_operator", "trainer_image/campaign_trainer"):
        shutil.copytree(REPO / tree, copy / tree, ignore=ignore)
    for name in ("Dockerfile", "trainer_image/Dockerfile", ".dockerignore", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, copy / name)
    env = {**os.environ, "CAMPAIGN_CACHE": str(cache)}
    try:
        check_rebuild(copy, env, base_ref)
    finally:  # a private buildah storage of a few hundred MB
        shutil.rmtree(cache, ignore_errors=True)


def check_rebuild(copy: Path, env: dict[str, str], base_ref: str) -> None:
    before_ref, before = build("operator", env=env, repo=copy)["operator"]
    (copy / "trainer_image/campaign_trainer/metrics.py").touch()
    assert build("operator", env=env, repo=copy)["operator"] == (before_ref, before), "mtime is no content"

    with (copy / "trainer_image/campaign_trainer/metrics.py").open("a") as f:
        f.write("\n# a change\n")
    after_ref, after = build("operator", env=env, repo=copy)["operator"]
    assert after_ref != before_ref and after != before
    old, new = Archive(before).layer_digests, Archive(after).layer_digests
    assert len(old) == len(new)
    # base, user, lock files, dependencies: shared; the project's files, its scripts, the smoke check: new.
    assert new[:4] == old[:4]
    assert new[4] != old[4]
    assert build("base", env=env, repo=copy)["base"][0] == base_ref
