"""``s2s demo --serve``: the demo prints the console's address and a sign-in,
then serves the API and the console, with its worker, until Ctrl-C."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, Hub

DEMO = (sys.executable, "-m", "s2s.cli", "demo", "--products", "300", "--serve")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _read_until(proc: subprocess.Popen[str], marker: str, timeout: float) -> str:
    """The output so far, once a line holds ``marker``; the process is
    killed if it does not come in time."""
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if marker in line:
                return "".join(seen)
    finally:
        timer.cancel()
    raise AssertionError(f"no {marker!r} within {timeout}s:\n{''.join(seen)[-3000:]}")


@pytest.mark.slow
def test_demo_serves_the_console_until_ctrl_c(tmp_path: Path, embedded_hub: Hub) -> None:
    env = {k: v for k, v in embedded_hub.env.items() if not k.startswith("S2S_")}
    port = _free_port()
    proc = subprocess.Popen(
        [*DEMO, "--port", str(port)],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out = _read_until(proc, "until Ctrl-C", timeout=600)
        assert "demo finished" in out
        found = re.search(
            rf"console: http://127\.0\.0\.1:{port}/console/ +sign in as demo with password (\S+)",
            out,
        )
        assert found, out[-2000:]
        password = found.group(1)
        web = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        deadline = time.monotonic() + 30
        while True:
            try:
                form = web.get("/console/login")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the console never answered"
                time.sleep(0.2)
        token = CSRF.search(form.text)
        assert token
        signed = web.post(
            "/console/login",
            data={"username": "demo", "password": password, "csrf_token": token.group(1)},
            follow_redirects=False,
        )
        assert signed.status_code == 303, signed.text
        overview = web.get("/console/overview.json").json()
        assert {r["client"] for r in overview["streams"]} == {"demo"}
        assert overview["open_letters"]["demo"] >= 1
        assert overview["workers"], "the demo's worker serves the console's actions"
        health = web.get("/health")
        assert health.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            rest, _ = proc.communicate()
    assert proc.returncode == 0, rest[-3000:]
    # Printed once, and never stored in the clear.
    assert (out + rest).count(password) == 1
    assert password.encode() not in (tmp_path / "var" / "hub.sqlite").read_bytes()
