"""Dead letters, the orders that need a person: ``s2s dlq ...``."""

from __future__ import annotations

import json
from typing import Any

import click

from hub import queries
from hub.db import session_scope
from hub.models import Client, DeadLetter, Order, Source
from hub.orders import ReplayError
from s2s.actions import ActionError, discard_letter, letters_to_replay, replay_letter
from s2s.cli.common import (
    CliError,
    Listing,
    cell,
    console,
    friendly,
    iso,
    print_json,
    say,
    say_facts,
    stamp,
)
from workers.sources import get_client


def letters_table(
    letters: list[tuple[DeadLetter, Order, str]], *, full: bool, title: str | None = None
) -> Listing:
    """Dead letters with the ERP's words whole; ``full`` adds the outcome (for
    --all and order pages)."""
    # Identifiers and classes never wrap, so they can be read and grepped whole.
    table = Listing(("message", "resolution") if full else ("message",), title=title)
    for name in ("id", "order", "order code", "client", "stage", "error"):
        table.column(name, no_wrap=True)
    table.column("attempts", justify="right", no_wrap=True)
    table.column("created (UTC)", no_wrap=True)
    if full:
        table.column("status", no_wrap=True)
    for letter, order, ccode in letters:
        cells: list[Any] = [
            str(letter.id),
            str(letter.order_id),
            cell(order.channel_order_code),
            cell(ccode),
            letter.stage,
            cell(letter.error_class),
            str(letter.attempts),
            stamp(letter.created_at),
        ]
        texts: list[str | None] = [letter.message]
        if full:
            cells.append(letter.status)
            texts.append(letter.resolution)
        table.row(f"dead letter {letter.id}", cells, texts)
    return table


def letter_json(letter: DeadLetter, order: Order, client_code: str) -> dict[str, Any]:
    """A dead letter for scripts: the table's fields, whole, with what to fix."""
    return {
        "id": letter.id,
        "order": letter.order_id,
        "channel": order.channel,
        "channel_order_code": order.channel_order_code,
        "client": client_code,
        "stage": letter.stage,
        "error_class": letter.error_class,
        "message": letter.message,
        "fix": letter.fix,
        "attempts": letter.attempts,
        "status": letter.status,
        "created_at": iso(letter.created_at),
        "resolved_at": iso(letter.resolved_at),
        "resolution": letter.resolution,
    }


@click.group()
def dlq() -> None:
    """Dead letters: orders that need a person; see why, fix, replay or discard."""


@dlq.command("list")
@click.option("--client", "client_code", help="Only this client's dead letters.")
@click.option("--all", "show_all", is_flag=True, help="Also replayed and discarded ones.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array on stdout, for scripts.")
@friendly
def dlq_list(client_code: str | None, show_all: bool, as_json: bool) -> None:
    """List open dead letters (all of them with --all), oldest first."""
    with session_scope() as s:
        client_id = get_client(s, client_code).id if client_code else None
        letters = queries.dead_letters(s, client_id=client_id, open_only=not show_all)
        if as_json:
            print_json([letter_json(*found) for found in letters])
            return
        if letters:
            console.print(letters_table(letters, full=show_all))
    if not letters:
        say("no dead letters" if show_all else "no open dead letters")


@dlq.command("show")
@click.argument("letter_id", type=int)
@friendly
def dlq_show(letter_id: int) -> None:
    """A dead letter in full: why, what to fix, and the order's canonical payload."""
    with session_scope() as s:
        letter = s.get(DeadLetter, letter_id)
        if letter is None:
            raise CliError(f"no dead letter {letter_id}")
        order = s.get(Order, letter.order_id)
        assert order is not None  # the foreign key cascades: a letter has its order
        c = s.get(Client, letter.client_id)
        src = s.get(Source, letter.source_id) if letter.source_id else None
        facts = [
            ("dead letter", str(letter.id)),
            ("status", letter.status),
            ("order", f"{order.id} {order.channel}/{order.channel_order_code} ({order.status})"),
            ("client", c.code if c else str(letter.client_id)),
            ("source", f"{src.code} ({src.kind})" if src else "-"),
            ("stage", letter.stage),
            ("error", letter.error_class),
            ("attempts", str(letter.attempts)),
            ("created", f"{stamp(letter.created_at)} UTC"),
            ("resolved", f"{stamp(letter.resolved_at)} UTC" if letter.resolved_at else "-"),
            ("resolution", letter.resolution or "-"),
            ("message", " ".join(letter.message.split())),
            ("fix", " ".join(letter.fix.split())),
        ]
        say_facts(facts)
        say("order payload:")
        console.print_json(json.dumps(order.order, default=str, ensure_ascii=False))


@dlq.command("replay")
@click.argument("letter_ids", nargs=-1, type=int)
@click.option("--all-open", is_flag=True, help="Replay every open dead letter of --client.")
@click.option("--client", "client_code", help="The client whose open dead letters to replay.")
@friendly
def dlq_replay(letter_ids: tuple[int, ...], all_open: bool, client_code: str | None) -> None:
    """Send dead-lettered orders through routing again, with today's settings and products.

    Fix what the letter's 'fix' says first (a setting, a product sync); each
    letter is replayed in its own transaction and its order routed only after
    that commit, so a worker never sees the order before it is 'received'.
    """
    try:
        letter_ids = letters_to_replay(letter_ids, all_open, client_code)
    except ActionError as exc:
        raise CliError(str(exc)) from None
    if not letter_ids:
        say(f"no open dead letters for client {client_code}")
        return
    failures: list[str] = []
    for letter_id in letter_ids:
        try:
            done = replay_letter(letter_id, note="replayed with s2s dlq replay")
        except ReplayError as exc:
            failures.append(str(exc))
            continue
        say(done.sentence())
    if failures:
        for message in failures[:-1]:
            CliError(message).show()
        raise CliError(failures[-1])


@dlq.command("discard")
@click.argument("letter_id", type=int)
@click.option("--reason", help="Why the order will not be raised (kept as the audit record).")
@friendly
def dlq_discard(letter_id: int, reason: str | None) -> None:
    """Give up on a dead-lettered order; the letter stays, with the reason, as the record."""
    # Checked here rather than by click, so the operator gets one line, not usage text.
    if reason is None or not reason.strip():
        raise CliError(f"say why: s2s dlq discard {letter_id} --reason TEXT")
    say(discard_letter(letter_id, reason))
