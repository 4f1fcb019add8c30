"""``s2s demo``: the whole hub locally against an emulated ERP, with no set-up."""

from __future__ import annotations

import sys

import click

from s2s.cli.common import console, friendly


@click.command()
@click.option(
    "--products", default=2000, show_default=True, help="Size of the demo ERP's catalogue."
)
@click.option("--keep-worker", is_flag=True, help="Leave the worker running afterwards.")
@friendly
def demo(products: int, keep_worker: bool) -> None:
    """Run the whole hub locally against an emulated ERP, with no set-up."""
    # Imported here, the one import inside a function in the CLI: the demo's
    # acts print with this package's run tables, so importing the demo while
    # this package loads would be circular.
    from s2s import demo as demo_run

    sys.exit(demo_run.run_demo(console, products=products, keep_worker=keep_worker))
