"""Flower, started with ``s2s flower``, sees the workers and the pipeline's
tasks by name — and nothing it shows holds a secret.

The ERP password, the hub database's password and the encryption key are
all real inputs of this run (PostgreSQL on trust accepts any password), so
if any of them leaked into task arguments, worker stats or configuration,
Flower's API would show it here.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from typing import Any

import httpx
import pytest

from emulators import sql_erp
from hub.db import session_scope
from hub.models import SyncRun
from tests.conftest import PG_USER, ROOT, _make_hub, wait_for
from tests.faults import free_port
from workers.sources import upsert_client, upsert_source
from workers.tasks import start_sync

pytestmark = [pytest.mark.services, pytest.mark.slow]

ERP_PASSWORD = "erp-pw-" + uuid.uuid4().hex[:12]
DB_PASSWORD = "db-pw-" + uuid.uuid4().hex[:12]
FLOWER_LOGIN = ("ops", "flower-" + uuid.uuid4().hex[:8])


def test_flower_shows_workers_and_named_tasks_without_secrets(
    postgres_db: Any, redis_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub_url = postgres_db().replace(f"//{PG_USER}@", f"//{PG_USER}:{DB_PASSWORD}@")
    gen = _make_hub(
        {"S2S_DATABASE_URL": hub_url, "S2S_BROKER_URL": redis_url}, tmp_path, monkeypatch
    )
    hub = next(gen)
    try:
        erp_url = postgres_db("s2s_erp")
        sql_erp.create_schema(erp_url)
        sql_erp.seed(erp_url, products=300, customers=5, seed=4)
        erp_db = erp_url.rsplit("/", 1)[1]
        with session_scope() as s:
            client, _ = upsert_client(s, "acme")
            source = upsert_source(
                s,
                client,
                "erp",
                "sql",
                {
                    "driver": "postgresql+psycopg",
                    "server": "127.0.0.1",
                    "database": erp_db,
                    "username": PG_USER,
                    "password": ERP_PASSWORD,
                    "page_size": 100,
                },
            )
            source_id = source.id
        # As `s2s worker` starts them on Redis: sending task events from the
        # start, not only once Flower's broadcast asking for them arrives
        # (on a loaded machine it was seen to miss both workers).
        hub.start_worker(name="fl1", queues="maintenance,fetch,map", events=True)
        hub.start_worker(name="fl2", queues="map,upsert", events=True)

        port = free_port()
        env = {**hub.env, "FLOWER_BASIC_AUTH": ":".join(FLOWER_LOGIN)}
        log = (hub.var_dir / "flower.log").open("ab")
        flower = subprocess.Popen(
            [sys.executable, "-m", "s2s.cli", "flower", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
        hub.workers.append(flower)
        base = f"http://127.0.0.1:{port}"
        http = httpx.Client(base_url=base, auth=FLOWER_LOGIN, timeout=10)

        def flower_up() -> bool:
            if flower.poll() is not None:
                raise AssertionError((hub.var_dir / "flower.log").read_text()[-3000:])
            try:
                return http.get("/healthcheck").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(flower_up, timeout=60, what="Flower to answer")
        assert httpx.get(f"{base}/api/workers", timeout=10).status_code == 401  # a login

        time.sleep(3)  # Flower's event receiver connects
        run_id = start_sync(source_id, "products", requested_by="test").run.id

        def run_done() -> bool:
            with session_scope() as s:
                return s.get(SyncRun, run_id).status == "succeeded"

        wait_for(run_done, timeout=120, what="the run")

        def workers() -> dict[str, Any] | None:
            body = http.get("/api/workers", params={"refresh": "1"}).json()
            names = {n.split("@")[0] for n in body}
            return body if {"fl1", "fl2"} <= names else None

        shown_workers = wait_for(workers, timeout=30, interval=1, what="both workers in Flower")

        def online() -> bool:
            # Flower's own page: a worker is online while its heartbeat
            # events arrive (sent by workers.ops.EventHeartbeat, off the loop).
            rows = http.get("/workers", params={"json": "1"}).json()["data"]
            alive = {r["hostname"].split("@")[0] for r in rows if r.get("status")}
            return {"fl1", "fl2"} <= alive

        wait_for(online, timeout=30, interval=1, what="both workers online by their events")

        runs = [run_id]

        def tasks() -> dict[str, Any] | None:
            body = http.get("/api/tasks").json()
            names = {t.get("name") for t in body.values()}
            # The pipeline's stages: fetch, then map (which also writes).
            wanted = {"s2s.sync.fetch_page", "s2s.sync.map_page"}
            if wanted <= names:
                return body
            # Flower's event receiver may connect after a fast run has ended
            # (a loaded machine): resync until it has seen one. The ERP's
            # rows change first: a page of unchanged rows is counted by its
            # fetch task alone, with no map task to show.
            with session_scope() as s:
                if s.get(SyncRun, runs[-1]).status != "running":
                    sql_erp.change_rows(erp_url, 200, seed=len(runs))
                    runs.append(
                        start_sync(source_id, "products", requested_by="test", full=True).run.id
                    )
            return None

        shown_tasks = wait_for(tasks, timeout=120, interval=1, what="pipeline tasks in Flower")
        for task in shown_tasks.values():
            if task["name"].startswith("s2s.sync."):
                # Ids only: a run id and page number, or a page id.
                assert task["kwargs"] in ("{}", None), task
                assert all(
                    part.strip().isdigit() for part in task["args"].strip("()[] ,").split(",")
                ), task

        seen = str(shown_workers) + str(shown_tasks)
        for name in ("fl1", "fl2"):
            seen += http.get(f"/worker/{next(n for n in shown_workers if n.startswith(name))}").text
        seen += http.get("/tasks").text + http.get("/broker").text
        for secret in (ERP_PASSWORD, DB_PASSWORD, hub.env["S2S_SECRET_KEY"]):
            assert secret not in seen
    finally:
        next(gen, None)
