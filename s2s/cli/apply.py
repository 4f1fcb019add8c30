"""``s2s apply``: clients, their sources and channels declared in a YAML file."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import click
import yaml
from sqlalchemy.orm import Session

from hub.db import session_scope
from hub.models import Client
from s2s.cli.clients import apply_schedules, describe_channel
from s2s.cli.common import CliError, console, friendly
from workers.sources import set_channels, upsert_client, upsert_source

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env(value: Any, where: str) -> Any:
    """${NAME} in a YAML value reads the environment, so files need not hold secrets."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            if m.group(1) not in os.environ:
                raise CliError(f"{where}: environment variable {m.group(1)} is not set")
            return os.environ[m.group(1)]

        return _ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand_env(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, where) for v in value]
    return value


def _clients_in(file: Path) -> list[Any]:
    """The file's ``clients:`` list; a file that is not one is one clear line."""
    try:
        doc = yaml.safe_load(file.read_text()) or {}
    except yaml.MarkedYAMLError as exc:
        # Only the problem and where: the parser's own message quotes the
        # offending line, which may be a line holding a secret.
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise CliError(f"{file}: not valid YAML{where}: {exc.problem or 'cannot parse'}") from None
    except yaml.YAMLError:
        raise CliError(f"{file}: not valid YAML") from None
    clients = doc.get("clients") if isinstance(doc, dict) else None
    if not isinstance(clients, list):
        raise CliError(f"{file}: expected a top-level 'clients:' list")
    return clients


@click.command("apply")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@friendly
def apply_file(file: Path) -> None:
    """Declare clients, their sources and channels in a YAML file (${ENV} allowed).

    A client's ``channels:`` maps shopify / woocommerce to ``secret`` (the
    webhook signing secret, encrypted at rest) and ``add_order_status``.
    """
    clients = _clients_in(file)
    with session_scope() as s:
        for i, c in enumerate(clients):
            where = f"{file}: clients[{i}]"
            if not isinstance(c, dict) or not c.get("code"):
                raise CliError(f"{where}: each client needs a 'code'")
            cl, token = upsert_client(s, str(c["code"]), c.get("name"))
            msg = f"client {cl.code}"
            if token:
                msg += f" added; API token (shown once): {token}"
            console.print(msg)
            _apply_sources(s, cl, c.get("sources") or [], where)
            _apply_channels(s, cl, c.get("channels"), where)


def _apply_sources(s: Session, cl: Client, sources: list[Any], where: str) -> None:
    for j, src in enumerate(sources):
        swhere = f"{where}.sources[{j}]"
        if not isinstance(src, dict) or not src.get("code") or not src.get("kind"):
            raise CliError(f"{swhere}: each source needs 'code' and 'kind'")
        settings = _expand_env(src.get("settings") or {}, f"{swhere}.settings")
        saved = upsert_source(
            s,
            cl,
            str(src["code"]),
            str(src["kind"]),
            settings,
            name=src.get("name"),
            enabled=bool(src.get("enabled", True)),
        )
        # Without 'schedule:' the source's schedules are left as they are.
        apply_schedules(s, saved, src.get("schedule") or None, f"{swhere}.schedule")
        console.print(f"  source {cl.code}/{src['code']} ({src['kind']}) saved")


def _apply_channels(s: Session, cl: Client, channels: Any, where: str) -> None:
    if channels is None:
        return
    if not isinstance(channels, dict):
        raise CliError(
            f"{where}.channels: expected a mapping of channel name to "
            "'secret' and 'add_order_status'"
        )
    expanded = _expand_env(channels, f"{where}.channels")
    for name in set_channels(s, cl, expanded):
        console.print(
            f"  channel {cl.code}/{name} saved: {describe_channel(cl, name)}",
            highlight=False,
        )
