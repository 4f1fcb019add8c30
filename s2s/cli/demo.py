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
@click.option(
    "--serve",
    is_flag=True,
    help="After the demo, keep serving the API and the operations console (and the "
    "worker) until Ctrl-C.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Where --serve listens.")
@click.option("--port", default=8000, show_default=True, help="Where --serve listens.")
@friendly
def demo(products: int, keep_worker: bool, serve: bool, host: str, port: int) -> None:
    """Run the whole hub locally against an emulated ERP, with no set-up.

    Ends with the operations console's address and a sign-in for it (an
    operator 'demo' with a new password each run).
    """
    # Imported here, the one import inside a function in the CLI: the demo's
    # acts print with this package's run tables, so importing the demo while
    # this package loads would be circular.
    from s2s import demo as demo_run

    serving = demo_run.Serve(host=host, port=port, serve=serve)
    sys.exit(
        demo_run.run_demo(console, products=products, keep_worker=keep_worker, serving=serving)
    )
