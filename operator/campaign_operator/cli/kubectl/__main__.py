"""`python -m campaign_operator.cli.kubectl`: what the krew shim (plugins/krew/kubectl-campaign) runs.
The program name is the plugin's, not `python -m ...`, so help and errors read as the pip entry point's."""

from .main import cli

cli(prog_name="kubectl-campaign")
