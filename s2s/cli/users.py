"""The operations console's users: ``s2s user add|list|remove|password``.

A password is read from standard input (``--password-stdin``, for scripts)
or asked for at a hidden, confirmed prompt; it is never a command-line
argument (those show in ``ps`` and shell history) and never printed.
"""

from __future__ import annotations

import sys

import click

from hub import users
from hub.db import session_scope
from s2s.cli.common import CliError, Listing, console, friendly, say, stamp
from workers.sources import get_client


def _password(from_stdin: bool) -> str:
    """The new password: stdin's first line, or typed twice at a hidden prompt."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        users.check_password(password)
    except users.UserError as exc:
        raise CliError(str(exc)) from None
    return password


_STDIN = click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input's first line."
)


@click.group("user")
def user() -> None:
    """Console users: operators (every client) and client users (one client)."""


@user.command("add")
@click.argument("username")
@click.option("--operator", is_flag=True, help="May see and act on every client.")
@click.option("--client", "client_code", help="May see and act on this client only.")
@_STDIN
@friendly
def user_add(username: str, operator: bool, client_code: str | None, password_stdin: bool) -> None:
    """Add a console user: --operator, or --client CODE for one client's staff."""
    if operator == bool(client_code):
        raise CliError("say who the user is: --operator, or --client CODE (one of them)")
    with session_scope() as s:
        client_id = get_client(s, client_code).id if client_code else None
        if users.get(s, username) is not None:
            raise CliError(f"console user {username!r} exists already")
    password = _password(password_stdin)
    try:
        with session_scope() as s:
            users.add(s, username, password, client_id)
    except users.UserError as exc:
        raise CliError(str(exc)) from None
    role = "operator (every client)" if operator else f"user of client {client_code}"
    say(f"console user {username} added: {role}")


@user.command("list")
@friendly
def user_list() -> None:
    """List console users with their role."""
    with session_scope() as s:
        found = users.listing(s)
        if not found:
            say("no console users (s2s user add NAME --operator adds one)")
            return
        table = Listing(())
        for name in ("username", "role", "client", "added (UTC)", "password set (UTC)"):
            table.column(name, no_wrap=True)
        for row, code in found:
            table.row(
                row.username,
                [
                    row.username,
                    "client user" if row.client_id else "operator",
                    code or "(all)",
                    stamp(row.created_at),
                    stamp(row.password_changed_at),
                ],
                [],
            )
    console.print(table)


@user.command("remove")
@click.argument("username")
@friendly
def user_remove(username: str) -> None:
    """Remove a console user; their sessions end at their next request."""
    try:
        with session_scope() as s:
            users.remove(s, username)
    except users.UserError as exc:
        raise CliError(str(exc)) from None
    say(f"console user {username} removed")


@user.command("password")
@click.argument("username")
@_STDIN
@friendly
def user_password(username: str, password_stdin: bool) -> None:
    """Set a user's password anew; their sessions signed in before end."""
    with session_scope() as s:
        if users.get(s, username) is None:
            raise CliError(f"no console user {username!r}")
    password = _password(password_stdin)
    try:
        with session_scope() as s:
            users.set_password(s, username, password)
    except users.UserError as exc:
        raise CliError(str(exc)) from None
    say(f"console user {username}: password set")
