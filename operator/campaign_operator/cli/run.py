"""`campaign run FILE`: execute a campaign on an embedded local Ray (no cluster needed)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from .errors import EXIT_STATUS_HELP, BadInput, Infrastructure
from .scaledown import scale_down_options, scaled

if TYPE_CHECKING:
    from campaign_operator.api.campaign import TrainingCampaign
    from campaign_operator.embedded.store import Store


@click.command("run", epilog=EXIT_STATUS_HELP)
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
@scale_down_options
@click.option(
    "--restart",
    is_flag=True,
    help="Start the campaign over: move the state dir's earlier state (state.db, progress, checkpoints) "
    "to <state>/discarded-<time>/ first. Without it, run resumes and refuses a damaged or empty "
    "state.db, or progress files the state.db does not account for.",
)
@click.option(
    "--strict-resources",
    is_flag=True,
    help="Refuse (exit 2) a campaign whose per-trial CPUs, GPUs or memory exceed this machine, instead "
    "of scaling them down to fit with a warning.",
)
def run(
    file: str,
    state_dir: str | None,
    max_parallel: int | None,
    quiet: bool,
    smoke: bool,
    epochs_scale: float | None,
    max_trials_per_phase: int | None,
    restart: bool,
    strict_resources: bool,
) -> None:
    """Run (or resume) the campaign in FILE on a local Ray started in this process.

    --smoke / --epochs-scale / --max-trials-per-phase run a scaled-down version of it (they set
    spec.scaleDown); its state dir is its own (.campaign/<name>-smoke, -partial-...).

    Running the same command again resumes from the state dir; it never starts over on top of
    earlier work: a damaged or empty state.db, or progress files it does not know, stop it with a
    one-line error until you pass --restart.

    Per-trial resources larger than this machine (a cluster's 8 CPUs and a GPU) are scaled down to
    fit before anything runs, with one warning naming each phase; a GPU trial runs on CPU here.
    """
    import sqlite3

    from campaign_operator.api.campaign import CampaignState
    from campaign_operator.api.validation import SpecError
    from campaign_operator.embedded.fit import fit, this_machine
    from campaign_operator.embedded.local_ray import RayStartFailed, start_local_executor
    from campaign_operator.embedded.manifest import load_campaign_file
    from campaign_operator.embedded.runner import Runner, StopOnSignal, default_parallelism, state_dir_for
    from campaign_operator.embedded.store import StoreError, open_for_run
    from campaign_operator.planner.scaledown import describe
    from campaign_operator.report.live import make_display

    try:
        campaign = load_campaign_file(file)
    except SpecError as e:
        raise BadInput("invalid campaign:\n  " + "\n  ".join(e.problems)) from None
    campaign = scaled(campaign, smoke, epochs_scale, max_trials_per_phase)
    fitted = fit(campaign, machine := this_machine())
    if fitted.changed and strict_resources:
        raise BadInput("--strict-resources: " + "; ".join(fitted.problems()))
    if fitted.changed:
        click.echo(f"warning: campaign {campaign.metadata.name}: {fitted.warning()}", err=True)
    campaign = fitted.campaign
    state = state_dir_for(campaign, state_dir)
    try:
        opened = open_for_run(state, campaign.metadata.name, restart=restart)
    except (StoreError, OSError) as e:  # in use by another runner, damaged, unwritable
        raise Infrastructure(f"campaign {campaign.metadata.name}: {' '.join(str(e).split())}") from None
    store = opened.store
    refuse_other_scale(store, campaign)
    display = make_display(quiet=quiet)
    executor = None
    try:
        sd = campaign.spec.scale_down
        run_line = f"{describe(sd)}, " if sd is not None else ""
        display.message(f"campaign {campaign.metadata.name}: {run_line}state in {state}; starting local Ray")
        if opened.discarded is not None:
            display.message(
                f"campaign {campaign.metadata.name}: --restart: the earlier state is in {opened.discarded} "
                "(delete it when you no longer need it)"
            )
        display.waiting("starting local Ray")  # a spinner on a terminal until the first screen
        try:
            executor = start_local_executor(
                state,
                machine,
                on_retry=lambda n, cause, wait: display.message(
                    f"local Ray did not start (try {n}: {cause}); trying again in {wait:g}s"
                ),
            )
        except RayStartFailed as e:
            raise Infrastructure(
                f"campaign {campaign.metadata.name}: {e}; nothing was run, run the same command again "
                "when the machine is less loaded"
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
        raise Infrastructure(f"campaign {campaign.metadata.name}: {where}{message}") from None
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


def refuse_other_scale(store: Store, campaign: TrainingCampaign) -> None:
    """A state dir holds one scale of a campaign: resuming it with another spec.scaleDown is refused
    as the apiserver refuses such an update (the spec's transition rule)."""
    from pydantic import ValidationError

    from campaign_operator.api.campaign import TrainingCampaign
    from campaign_operator.api.validation import transition_violations

    try:
        stored = TrainingCampaign.model_validate(store.manifest())
    except ValidationError:  # none yet, or one an older version wrote: nothing to compare
        return
    problems = transition_violations(stored, campaign)
    if problems:
        store.close()
        raise BadInput(
            f"campaign {campaign.metadata.name}: {store.dir} holds a run at another scale: "
            + "; ".join(problems)
        )
