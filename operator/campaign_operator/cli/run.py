"""`campaign run FILE`: execute a campaign on an embedded local Ray (no cluster needed)."""

from __future__ import annotations

import sys

import click


@click.command("run")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--state",
    "state_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="State directory (SQLite store, progress, checkpoints). Default: .campaign/<campaign-name>.",
)
@click.option(
    "--max-parallel",
    type=click.IntRange(min=1),
    default=None,
    help="Most trials at once on this machine. Default: the CPUs divided by the largest trial's CPUs.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress output; only the final line.")
def run(file: str, state_dir: str | None, max_parallel: int | None, quiet: bool) -> None:
    """Run (or resume) the campaign in FILE on a local Ray started in this process.

    Exit status 0 when the campaign Succeeded, 1 when it Failed, 3 when another runner holds the
    state dir, 130 when interrupted (run the same command again to resume).
    """
    from campaign_operator.api.campaign import CampaignState
    from campaign_operator.api.validation import SpecError
    from campaign_operator.embedded.display import make_display
    from campaign_operator.embedded.manifest import load_campaign_file
    from campaign_operator.embedded.runner import Runner, StopOnSignal, default_parallelism, state_dir_for
    from campaign_operator.embedded.store import LeaseHeld, Store

    try:
        campaign = load_campaign_file(file)
    except SpecError as e:
        raise click.ClickException("invalid campaign:\n  " + "\n  ".join(e.problems)) from None
    state = state_dir_for(campaign, state_dir)
    store = Store(state)
    try:
        store.acquire_lease()
    except LeaseHeld as e:
        store.close()
        click.echo(f"campaign {campaign.metadata.name}: {e}", err=True)
        sys.exit(3)
    display = make_display(quiet=quiet)
    executor = None
    try:
        display.message(f"campaign {campaign.metadata.name}: state in {state}; starting local Ray")
        from campaign_operator.executors.local import LocalExecutor

        executor = LocalExecutor(state)
        limit = max_parallel or default_parallelism(campaign, float(executor.resources.get("CPU", 1)))
        runner = Runner(campaign, store, executor, display, max_parallel=limit)
        with StopOnSignal(runner, display):
            result = runner.run()
    except KeyboardInterrupt:  # during Ray's start-up, or a second Ctrl-C
        display.close()
        click.echo(f"campaign {campaign.metadata.name} interrupted; run the same command to resume", err=True)
        sys.exit(130)
    finally:
        display.close()
        if executor is not None:
            executor.close()
        store.close()
    name = campaign.metadata.name
    if result.interrupted:
        click.echo(
            f"campaign {name} interrupted; state saved in {state}; run the same command to resume", err=True
        )
        sys.exit(130)
    status = result.status
    if status.state == CampaignState.SUCCEEDED:
        click.echo(f"campaign {name} Succeeded: {status.message} (state in {state})")
        return
    click.echo(f"campaign {name} {status.state.value}: {status.message}", err=True)
    sys.exit(1)
