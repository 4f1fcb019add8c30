"""The demo's iSync act: variable products (one stock line per size and
colour) over SOAP, sessions shared by the worker's processes, sales orders
with shipping as a service line, and one refused with iSync's ResponseText."""

from __future__ import annotations

from emulators import isync
from s2s.cli.runs import runs_table
from s2s.demo_acts import Act, Stage, raise_batch, register, source_skus, sync

# A demo-only credential of the emulated ERP; it exists to show that a
# password never reaches a log, a task or the screen.
PASSWORD = "demo-isync-Secret-2718"


def play(stage: Stage) -> bool:

    console = stage.console
    products = max(stage.products // 8, 20)
    console.rule("[bold]iSync")
    data = isync.IsyncData.generated(products=products, variants_per_product=4, seed=5)
    data.add_service_item("SHIP")
    with isync.serve(data, password=PASSWORD) as server:
        console.print(
            f"emulated iSync messaging service at {server.service_url}: "
            f"{len(data.stock_lines())} stock lines of {products} products"
        )
        source_id = register(
            "isync",
            "isync",
            {
                "service_url": server.service_url,
                "username": server.username,
                "password": PASSWORD,
                "default_customer_code": "CASH01",
                "shipping_code": "SHIP",
                "page_size": 250,
            },
            "Demo iSync",
        )
        synced = sync(console, source_id, "products")
        console.print(runs_table([synced], title="iSync products"))
        flagged = len(
            {ln["JobProductID"] for ln in data.stock_lines() if ln["WebSale"] == "Delete"}
        )
        console.print(
            f"  skipped: {synced.skipped} products whose lines say WebSale Delete ({flagged} in "
            "iSync), never held by the hub: nothing to remove"
        )
        skus = source_skus(source_id, 10)
        lines = data.stock_lines()
        withdrawn = skus[-1]
        data.seed([line for line in lines if line["SKU"] != withdrawn])
        data.add_service_item("SHIP")
        rows, letters = raise_batch(
            stage, [skus[0:2], skus[2:4]], [withdrawn], f"IS-{stage.run}", "iSync sales orders"
        )
        counts = data.order_counts()
    good_ok = all(o.status == "raised" for o in rows[:2]) and set(counts.values()) == {1}
    refused = letters.get(rows[2].id)
    refused_ok = refused is not None and withdrawn in refused.message
    synced_ok = synced.status == "succeeded" and synced.created > 0 and synced.skipped == flagged
    return synced_ok and good_ok and refused_ok


ACT = Act(play, secrets=(PASSWORD,))
