"""The ``s2s`` command: one entry point for operators.

One module per command group, assembled here with click's ``add_command``;
``s2s.cli.common`` holds what they share (the consoles, one-line errors).
``wait_for_run`` and ``runs_table`` are exported for the demo.
"""

from __future__ import annotations

import click

from hub.logs import configure
from hub.settings import get_settings
from s2s.cli.apply import apply_file
from s2s.cli.catalogue import customers, products
from s2s.cli.channel import channel
from s2s.cli.clients import client, source
from s2s.cli.common import CliError
from s2s.cli.db import db, keys
from s2s.cli.demo import demo
from s2s.cli.dlq import dlq
from s2s.cli.orders import orders
from s2s.cli.preview import check, mappings, preview
from s2s.cli.processes import api, beat, flower, worker
from s2s.cli.push import push
from s2s.cli.runs import resync, runs_cmd, runs_table, wait_for_run
from s2s.cli.status import pause, resume, schedule_cmd, status
from s2s.cli.users import user

__all__ = ["cli", "main", "runs_table", "wait_for_run"]


@click.group()
def cli() -> None:
    """Integration hub: sync ERPs into the hub, raise channel orders into ERPs."""
    try:
        s = get_settings()
    except ValueError as exc:
        # A bad setting in the environment (S2S_RETENTION_DAYS=0, ...) is
        # the operator's to fix: one line naming it, for every command.
        raise CliError(str(exc)) from None
    configure(s.log_format, "WARNING" if s.log_level == "INFO" else s.log_level)


for command in (
    db,
    client,
    source,
    channel,
    apply_file,
    check,
    preview,
    resync,
    runs_cmd,
    status,
    schedule_cmd,
    pause,
    resume,
    orders,
    dlq,
    keys,
    worker,
    api,
    beat,
    flower,
    mappings,
    demo,
    products,
    customers,
    push,
    user,
):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="s2s")
