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
@click.option(
    "--restart",
    is_flag=True,
    help="Start the campaign over: move the state dir's earlier state (state.db, progress, checkpoints) "
    "to <state>/discarded-<time>/ first. Without it, run resumes and refuses a damaged or empty "
    "state.db, or progress files the state.db does not account for.",
)
def run(file: str, state_dir: str | None, max_parallel: int | None, quiet: bool, restart: bool) -> None:
    """Run (or resume) the campaign in FILE on a local Ray started in this process.

    Running the same command again resumes from the state dir; it never starts over on top of
    earlier work: a damaged or empty state.db, or progress files it does not know, stop it with a
    one-line error until you pass --restart.

    Exit status 0 when the campaign Succeeded, 1 when it Failed or the state dir cannot be used,
    3 when another runner holds the state dir, 130 when interrupted (run the same command again to
    resume).
    """
    import sqlite3

    from campaign_operator.api.campaign import CampaignState
    from campaign_operator.api.validation import SpecError
    from campaign_operator.embedded.manifest import load_campaign_file
    from campaign_operator.embedded.runner import Runner, StopOnSignal, default_parallelism, state_dir_for
    from campaign_operator.embedded.store import LeaseHeld, StoreError, open_for_run
    from campaign_operator.report.live import make_display

    try:
        campaign = load_campaign_file(file)
    except SpecError as e:
        raise click.ClickException("invalid campaign:\n  " + "\n  ".join(e.problems)) from None
    state = state_dir_for(campaign, state_dir)
    try:
        opened = open_for_run(state, campaign.metadata.name, restart=restart)
    except LeaseHeld as e:
        click.echo(f"campaign {campaign.metadata.name}: {e}", err=True)
        sys.exit(3)
    except StoreError as e:
        raise click.ClickException(f"campaign {campaign.metadata.name}: {e}") from None
    store = opened.store
    display = make_display(quiet=quiet)
    executor = None
    try:
        if opened.discarded is not None:
            display.message(
                f"campaign {campaign.metadata.name}: --restart: the earlier state is in {opened.discarded} "
                "(delete it when you no longer need it)"
            )
        display.message(f"campaign {campaign.metadata.name}: state in {state}; starting local Ray")
        from campaign_operator.executors.local import LocalExecutor

        try:
            executor = LocalExecutor(state)
        except Exception as e:  # Ray's own start-up errors are bare Exceptions
            first = " ".join(str(e).split())[:300]
            raise click.ClickException(
                f"campaign {campaign.metadata.name}: local Ray did not start ({first}); nothing was run, "
                "run the same command again"
            ) from None
        limit = max_parallel or default_parallelism(campaign, float(executor.resources.get("CPU", 1)))
        runner = Runner(campaign, store, executor, display, max_parallel=limit)
        with StopOnSignal(runner, display):
            result = runner.run()
    except KeyboardInterrupt:  # during Ray's start-up, or a second Ctrl-C
        display.close()
        click.echo(f"campaign {campaign.metadata.name} interrupted; run the same command to resume", err=True)
        sys.exit(130)
    except (StoreError, sqlite3.DatabaseError) as e:  # the state file was damaged while running
        display.close()
        where = "" if isinstance(e, StoreError) else f"{state / 'state.db'}: "
        message = " ".join(str(e).split())
        raise click.ClickException(f"campaign {campaign.metadata.name}: {where}{message}") from None
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
