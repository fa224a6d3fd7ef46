"""`campaign-operator`: runs kopf with our handlers and settings.

Equivalent under plain kopf (configuration then comes from CAMPAIGN_OPERATOR_* variables):
    kopf run --standalone -A -m campaign_operator.k8s.handlers
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from urllib.parse import urlsplit

import click
import kopf
from aiohttp import web

from campaign_operator.executors.common import TrainerSettings
from campaign_operator.kube.client import KubeClient, instance_identity

from .leader import LeaderElector, Lease, Timing
from .settings import OperatorConfig


def _env_pairs(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r}: expected KEY=VALUE", param_hint="--trainer-env")
        out[key] = value
    return out


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-n", "--namespace", "namespaces", multiple=True, help="Watch only these namespaces (repeatable)."
)
@click.option("-A", "--all-namespaces", is_flag=True, help="Watch the whole cluster (default when no -n).")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="Default: in-cluster, else KUBECONFIG.")
@click.option("--metrics-port", type=int, default=9090, show_default=True, help="0 disables /metrics.")
@click.option("--metrics-addr", default="0.0.0.0", show_default=True)
@click.option(
    "--liveness",
    default="http://0.0.0.0:8081/healthz",
    show_default=True,
    help="kopf liveness endpoint ('' disables).",
)
@click.option(
    "--resync-seconds",
    type=float,
    default=30.0,
    show_default=True,
    help="Reconcile every campaign at least this often.",
)
@click.option("--trainer-image", default=TrainerSettings.image, show_default=True)
@click.option(
    "--trainer-python",
    default=TrainerSettings.python,
    show_default=True,
    help="Interpreter with campaign_trainer on the Ray nodes.",
)
@click.option("--trainer-service-account", default=TrainerSettings.service_account, show_default=True)
@click.option(
    "--trainer-cluster-role",
    default="",
    help="ClusterRole to bind the trainer service account to in each namespace before its first"
    " RayJob (the chart's <fullname>-trainer); '' leaves both to the cluster's admin.",
)
@click.option(
    "--trainer-image-pull-policy",
    type=click.Choice(["Always", "IfNotPresent", "Never"]),
    default=TrainerSettings.image_pull_policy,
    show_default=True,
    help="Pull policy of the Ray containers where the node pool sets none.",
)
@click.option(
    "--trainer-env", multiple=True, metavar="KEY=VALUE", help="Environment for trainers (repeatable)."
)
@click.option(
    "--leader-elect/--no-leader-elect",
    default=True,
    show_default=True,
    help="Only the holder of a Lease acts; other replicas wait as standbys (off: exactly one replica).",
)
@click.option(
    "--leader-election-namespace",
    default=None,
    help="Namespace of the Lease (default: the pod's namespace, else 'default').",
)
@click.option(
    "--leader-election-id", default="campaign-operator", show_default=True, help="The Lease's name."
)
@click.option(
    "--leader-lease-seconds",
    type=click.IntRange(min=5),
    default=15,
    show_default=True,
    help="A standby takes over a Lease left unrenewed this long (the holder stops after 2/3 of it).",
)
@click.option("-v", "--verbose", is_flag=True)
def main(
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    kubeconfig: str | None,
    metrics_port: int,
    metrics_addr: str,
    liveness: str,
    resync_seconds: float,
    trainer_image: str,
    trainer_python: str,
    trainer_service_account: str,
    trainer_cluster_role: str,
    trainer_image_pull_policy: str,
    trainer_env: tuple[str, ...],
    leader_elect: bool,
    leader_election_namespace: str | None,
    leader_election_id: str,
    leader_lease_seconds: int,
    verbose: bool,
) -> None:
    """Run the TrainingCampaign operator."""
    if namespaces and all_namespaces:
        raise click.UsageError("-n and -A are exclusive")
    if kubeconfig:
        os.environ["KUBECONFIG"] = kubeconfig  # kopf's own login reads it too
    config = OperatorConfig(
        kubeconfig=kubeconfig,
        metrics_port=metrics_port,
        metrics_addr=metrics_addr,
        resync_seconds=resync_seconds,
        trainer=TrainerSettings(
            image=trainer_image,
            python=trainer_python,
            service_account=trainer_service_account,
            cluster_role=trainer_cluster_role or None,
            image_pull_policy=trainer_image_pull_policy,
            env=_env_pairs(trainer_env),
        ),
    )
    kopf.configure(verbose=verbose)
    from . import handlers  # noqa: F401  (registers the handlers in kopf's default registry)

    run = partial(
        kopf.operator,
        clusterwide=not namespaces,
        namespaces=list(namespaces),
        standalone=True,  # one active replica through the Lease, not kopf's peering (which pauses all)
        liveness_endpoint=liveness or None,
        memo=kopf.Memo(config=config),
    )
    if not leader_elect:
        asyncio.run(run())
        return
    lease_ns = leader_election_namespace or os.environ.get("POD_NAMESPACE") or "default"
    lease = Lease(lease_ns, leader_election_id, Timing.for_lease(leader_lease_seconds))
    if not asyncio.run(lead(run, config.kubeconfig, lease, liveness)):
        raise SystemExit("lost the leader lease; exiting so that only one operator acts")


async def lead(
    run: Callable[..., Awaitable[None]], kubeconfig: str | None, lease: Lease, liveness: str
) -> bool:
    """Waits for the Lease, then runs kopf until it stops (True) or the Lease is lost (False)."""
    client = await KubeClient.connect(kubeconfig)
    elector = LeaderElector(client, lease, instance_identity())
    try:
        async with standby_health(liveness):
            await elector.acquire()
        lost = asyncio.Event()
        renewing = asyncio.create_task(elector.hold(lost))
        try:
            await run(stop_flag=lost)
        finally:
            renewing.cancel()
            if not lost.is_set():
                await elector.release()
        return not lost.is_set()
    finally:
        await client.close()


@asynccontextmanager
async def standby_health(liveness: str) -> AsyncIterator[None]:
    """A standby is alive too: it answers the liveness probe until kopf takes the endpoint over."""
    if not liveness:
        yield
        return
    url = urlsplit(liveness)
    app = web.Application()

    async def alive(_: web.Request) -> web.Response:
        return web.json_response({"standby": True})

    app.router.add_get(url.path or "/", alive)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, url.hostname, url.port).start()
    try:
        yield
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    main()
