"""The demo's SYSPRO act: the company database read by key (three queries a
page), customers for the trade store, SORTOI orders through e.net, and one
refused with SYSPRO's ErrorDescription."""

from __future__ import annotations

from typing import Any

from emulators import syspro
from s2s.cli.runs import runs_table
from s2s.demo_acts import Act, Stage, raise_batch, register, source_skus, sync, withdraw

# A demo-only credential of the emulated ERP; it exists to show that a
# password never reaches a log, a task or the screen.
PASSWORD = "demo-syspro-Secret-1618"


def play(stage: Stage) -> bool:

    console = stage.console
    console.rule("[bold]SYSPRO")
    path = stage.var_dir / "demo-syspro.sqlite"
    path.unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    summary = syspro.seed(url, stock=max(stage.products // 2, 50), customers=40, seed=5)
    with syspro.serve(url, operator_password=PASSWORD) as server:
        console.print(
            f"emulated SYSPRO company database ({summary.stock} stock codes, "
            f"{summary.customers} customers) and e.net at {server.enet_url}"
        )
        source_id = register("syspro", "syspro", _settings(url, server.enet_url), "Demo SYSPRO")
        synced = [sync(console, source_id, "products"), sync(console, source_id, "customers")]
        console.print(runs_table(synced, title="SYSPRO products and customers"))
        inactive = summary.stock - summary.active
        console.print(
            f"  skipped: {synced[0].skipped} stock codes not marked active ({inactive} in "
            "SYSPRO), never held by the hub: nothing to remove"
        )
        skus = source_skus(source_id, 10)
        withdrawn = skus[-1]
        withdraw(url, "InvMaster", "StockCode", withdrawn)
        rows, letters = raise_batch(
            stage,
            [skus[0:2], skus[2:4]],
            [withdrawn],
            f"SY-{stage.run}",
            "SYSPRO sales orders (SORTOI)",
        )
        counts = syspro.order_counts(url)
    good_ok = all(o.status == "raised" for o in rows[:2]) and counts.headers == counts.orders == 2
    refused = letters.get(rows[2].id)
    refused_ok = refused is not None and withdrawn in refused.message
    runs_ok = all(r.status == "succeeded" and r.created > 0 for r in synced)
    # Inactive stock codes are Delete rows for products the hub never held.
    runs_ok = runs_ok and synced[0].skipped == inactive
    return runs_ok and good_ok and refused_ok


def _settings(database_url: str, enet_url: str) -> dict[str, Any]:
    return {
        "database_url": database_url,
        "operator": "ADMIN",
        "operator_password": PASSWORD,
        "company_id": "EDU1",
        "enet_url": enet_url,
        "price_codes": {"A": "retail", "B": "wholesale", "C": "trade"},
        "sales_rep": "001",
        "default_customer_code": "CASH01",
        "order_warehouse": "WH01",
        "page_size": 500,
    }


ACT = Act(play, secrets=(PASSWORD,))
