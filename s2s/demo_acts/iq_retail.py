"""The demo's IQ Retail act: its emulator on a local port, stock synced over
its API, sales orders raised, and one refused with IQ's own words."""

from __future__ import annotations

from emulators import iq_retail
from s2s.cli.runs import runs_table
from s2s.demo_acts import Act, Stage, raise_batch, register, source_skus, sync, withdraw

# A demo-only credential of the emulated ERP; it exists to show that a
# password never reaches a log, a task or the screen.
PASSWORD = "demo-iq-Secret-5150"


def play(stage: Stage) -> bool:

    console = stage.console
    console.rule("[bold]IQ Retail")
    path = stage.var_dir / "demo-iq.sqlite"
    path.unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    summary = iq_retail.seed(url, products=max(stage.products // 2, 50), seed=5)
    iq_retail.add_service_item(url, "SHIP")
    with iq_retail.serve(url, password=PASSWORD) as server:
        console.print(
            f"emulated IQ Retail API at {server.base_url}: {summary.products} stock items "
            f"({summary.web_items} web items)"
        )
        source_id = register(
            "iq",
            "iq_retail",
            {
                "request_url": server.base_url,
                "company_number": "002",
                "user_number": "99",
                "user_password": PASSWORD,
                "default_debtor_account": "CASH01",
                "shipping_code": "SHIP",
                "page_size": 500,
            },
            "Demo IQ Retail",
        )
        synced = sync(console, source_id, "products")
        console.print(runs_table([synced], title="IQ Retail products"))
        console.print(
            f"  skipped: {synced.skipped} stock items not ticked WebItem ({summary.hidden} "
            "and the shipping service item), never held by the hub: nothing to remove"
        )
        skus = source_skus(source_id, 12)
        withdrawn = skus[-1]
        withdraw(url, "Stock", "code", withdrawn)
        good = [skus[2 * n : 2 * n + 2] for n in range(3)]
        rows, letters = raise_batch(
            stage, good, [withdrawn], f"IQ-{stage.run}", "IQ Retail sales orders"
        )
        counts = iq_retail.order_counts(url)
    good_ok = all(o.status == "raised" and o.document_number for o in rows[:3])
    refused = letters.get(rows[3].id)
    refused_ok = refused is not None and f"Invalid Stock Code [{withdrawn}]" in refused.message
    once_ok = counts.headers == counts.orders == 3
    console.print(
        f"IQ now holds {counts.orders} sales orders from the demo, each once"
        if once_ok
        else f"[red]IQ holds {counts.headers} documents for {counts.orders} orders[/]"
    )
    synced_ok = synced.status == "succeeded" and synced.created > 0
    # Items off the web (SHIP too) are Delete rows for products the hub never held.
    synced_ok = synced_ok and synced.skipped == summary.hidden + 1
    return synced_ok and good_ok and refused_ok and once_ok


ACT = Act(play, secrets=(PASSWORD,))
