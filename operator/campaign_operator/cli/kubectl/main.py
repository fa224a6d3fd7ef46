"""`kubectl campaign`: follow, summarise and export campaigns on a cluster, with the same views,
results and report as embedded mode (cli/output.py); only the source differs (source.py).

Exit status: 0 done (`watch`: the campaign Succeeded), 1 the campaign Failed, 3 the cluster could not
be read or written (unreachable, forbidden, no such campaign), 130 interrupted."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from campaign_operator import __version__
from campaign_operator.api.campaign import CampaignState
from campaign_operator.cli.output import follow, results_options, show, write_report, write_results
from campaign_operator.kube.client import ApiError, KubeClient
from campaign_operator.lifecycle.wire import CAMPAIGNS, GROUP, VERSION

from . import logs as trial_logs
from .access import explain
from .source import default_namespace, followed, read

EXIT_FAILED, EXIT_CLUSTER, EXIT_INTERRUPTED = 1, 3, 130
LOG_WAIT_S = 2.0
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class ClusterError(click.ClickException):
    exit_code = EXIT_CLUSTER


@dataclass(frozen=True)
class Target:
    """Where to look: the user's kubeconfig and context, and a namespace (kubectl's defaults)."""

    kubeconfig: str | None
    context: str | None
    namespace: str

    async def connect(self) -> KubeClient:
        try:
            return await KubeClient.connect(self.kubeconfig, self.context, component="kubectl-campaign")
        except Exception as e:  # kubernetes_asyncio's config errors are of many kinds
            raise ClusterError(f"cannot load the kubeconfig: {' '.join(str(e).split())[:300]}") from None


def cluster_options(f: F) -> F:
    """--kubeconfig, --context and -n/--namespace on every command, after its arguments as kubectl
    users type them (kubectl hands the plugin its whole command line)."""
    f = click.option("-n", "--namespace", default=None, help="Default: the context's namespace.")(f)
    f = click.option("--context", default=None, help="The kubeconfig context to use.")(f)
    return click.option("--kubeconfig", default=None, envvar="KUBECONFIG", help="Path to the kubeconfig.")(f)


def target(kubeconfig: str | None, context: str | None, namespace: str | None) -> Target:
    if kubeconfig and os.pathsep in kubeconfig:  # KUBECONFIG may list several files: the first is read
        kubeconfig = kubeconfig.split(os.pathsep)[0]
    return Target(kubeconfig, context, namespace or default_namespace(kubeconfig, context))


def run(where: Target, what: str, action: Callable[[KubeClient], Awaitable[T]]) -> T:
    """`action` on a connected client; an API refusal becomes one line saying what is missing."""

    async def go() -> T:
        client = await where.connect()
        try:
            return await action(client)
        except ApiError as e:
            raise ClusterError(explain(e, what)) from None
        finally:
            await client.close()

    return asyncio.run(go())


def iterate(where: Target, what: str, stream: Callable[[KubeClient], AsyncGenerator[T]]) -> Iterator[T]:
    """The items of an async stream, one at a time, for the synchronous views."""
    loop = asyncio.new_event_loop()
    client = loop.run_until_complete(where.connect())
    items = stream(client)
    try:
        while True:
            try:
                yield loop.run_until_complete(anext(items))
            except StopAsyncIteration:
                return
            except ApiError as e:
                raise ClusterError(explain(e, what)) from None
    finally:
        loop.run_until_complete(items.aclose())
        loop.run_until_complete(client.close())
        loop.close()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kubectl-campaign")
def cli() -> None:
    """Training campaigns on a cluster: follow them, read their results and reports, and their
    trials' logs. Uses your kubeconfig, context and namespace, as kubectl does."""


@cli.command("list")
@cluster_options
@click.option("-A", "--all-namespaces", is_flag=True, help="Campaigns of every namespace.")
def list_campaigns(
    kubeconfig: str | None, context: str | None, namespace: str | None, all_namespaces: bool
) -> None:
    """Campaigns with their state, phase, progress and failure rate."""
    where = target(kubeconfig, context, namespace)
    url = f"/apis/{GROUP}/{VERSION}/{CAMPAIGNS}"
    if not all_namespaces:
        url = f"/apis/{GROUP}/{VERSION}/namespaces/{where.namespace}/{CAMPAIGNS}"
    scope = "every namespace" if all_namespaces else f"namespace {where.namespace}"
    items = run(where, f"campaigns in {scope}", lambda c: c.request("GET", url))["items"]
    if not items:
        click.echo(f"no campaigns in {scope}")
        return
    rows = [_campaign_row(c, all_namespaces) for c in items]
    header = (["NAMESPACE"] if all_namespaces else []) + ["NAME", "STATE", "PHASE", "PROGRESS", "FAILRATE"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


def _campaign_row(c: dict[str, Any], with_namespace: bool) -> list[str]:
    s = c.get("status") or {}
    row = [c["metadata"]["name"], s.get("state", "Pending"), s.get("currentPhase") or "-"]
    row += [s.get("progress") or "-", s.get("failRate") or "-"]
    return [c["metadata"].get("namespace", ""), *row] if with_namespace else row


@cli.command("status")
@click.argument("name")
@cluster_options
def status(name: str, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
    """One screen: phases, counts, failure rate vs threshold, gates, ETA, running and failed trials."""
    where = target(kubeconfig, context, namespace)
    view = run(where, _what(name, where), lambda c: read(c, where.namespace, name))
    show(view.snapshot())


@cli.command("watch")
@click.argument("name")
@cluster_options
def watch(name: str, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
    """The live view of `campaign run`, fed by watches of the campaign and its trials, until the
    campaign ends (exit 0 Succeeded, 1 Failed). Ctrl-C leaves it running."""
    where = target(kubeconfig, context, namespace)
    last = follow(iterate(where, _what(name, where), lambda c: followed(c, where.namespace, name)))
    if last is None or not last.finished:
        sys.exit(EXIT_INTERRUPTED)
    click.echo(f"campaign {name} {last.status.state.value}: {last.status.message}")
    if last.status.state != CampaignState.SUCCEEDED:
        sys.exit(EXIT_FAILED)


@cli.command("results")
@click.argument("name")
@cluster_options
@results_options
def results(
    name: str,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    phase: str | None,
    fmt: str,
    path: str | None,
) -> None:
    """One row per trial (the columns of `campaign results`): phase, name, state, reason, param.*,
    final.* and best.* metrics, duration."""
    where = target(kubeconfig, context, namespace)
    view = run(where, _what(name, where), lambda c: read(c, where.namespace, name))
    write_results(view.data(), phase, fmt, path)


@cli.command("report")
@click.argument("name")
@cluster_options
@click.option(
    "-o", "--output", "path", type=click.Path(dir_okay=False), default="report.html", show_default=True
)
def report(name: str, kubeconfig: str | None, context: str | None, namespace: str | None, path: str) -> None:
    """The HTML report of `campaign report`, from the campaign's Trials."""
    where = target(kubeconfig, context, namespace)
    view = run(where, _what(name, where), lambda c: read(c, where.namespace, name))
    write_report(view.data(), path)


@cli.command("logs")
@click.argument("trial")
@cluster_options
@click.option("--attempt", type=click.IntRange(min=1), default=None, help="Default: the latest attempt.")
@click.option("-f", "--follow", "follow_log", is_flag=True, help="Keep streaming while the pod runs.")
def logs(
    trial: str,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    attempt: int | None,
    follow_log: bool,
) -> None:
    """A trial's driver output (its attempt's RayJob pods). With -f, waits for the attempt's pods to
    start and streams until they end."""
    where = target(kubeconfig, context, namespace)
    what = f"trial {trial} in namespace {where.namespace}"

    async def show_log(client: KubeClient) -> None:
        said_waiting, streamed = False, set()
        while True:
            try:
                source = await trial_logs.locate(client, where.namespace, trial, attempt)
                if source.pod in streamed:  # followed to its end: a retried submitter gets a new pod
                    if await trial_logs.job_over(client, where.namespace, source.job):
                        return
                    raise trial_logs.NotYet(f"RayJob {source.job} is still going")
                async for chunk in trial_logs.stream(client, where.namespace, source, follow_log):
                    if source.pod not in streamed:
                        click.echo(f"# {source.role} pod {source.pod} of RayJob {source.job}", err=True)
                        streamed.add(source.pod)
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.flush()
                streamed.add(source.pod)
                if not follow_log:
                    return
            except trial_logs.NotYet as e:  # -f waits for the pod, as kubectl logs -f would not
                if not follow_log:
                    raise ClusterError(f"{e} (-f waits for it)") from None
                if not said_waiting and not streamed:
                    click.echo(f"# {e}; waiting", err=True)
                    said_waiting = True
                await asyncio.sleep(LOG_WAIT_S)
            except trial_logs.LogsUnavailable as e:
                if streamed:  # the attempt ended and the operator removed its RayJob: all was shown
                    return
                raise ClusterError(str(e)) from None

    try:
        run(where, what, show_log)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)


@cli.command("suspend")
@click.argument("name")
@cluster_options
def suspend(name: str, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
    """Start no new trials (running ones finish); `resume` goes on."""
    _set_suspend(name, target(kubeconfig, context, namespace), True)


@cli.command("resume")
@click.argument("name")
@cluster_options
def resume(name: str, kubeconfig: str | None, context: str | None, namespace: str | None) -> None:
    """Start trials again after `suspend`."""
    _set_suspend(name, target(kubeconfig, context, namespace), False)


def _set_suspend(name: str, where: Target, value: bool) -> None:
    body = {"spec": {"suspend": value}}
    run(
        where,
        _what(name, where),
        lambda c: c.patch(GROUP, VERSION, CAMPAIGNS, where.namespace, name, body),
    )
    click.echo(f"trainingcampaign {where.namespace}/{name} {'suspended' if value else 'resumed'}")


def _what(name: str, where: Target) -> str:
    return f"campaign {name} in namespace {where.namespace}"


def main() -> None:
    cli()
