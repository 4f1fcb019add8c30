"""What every command shares: the consoles, one-line errors, literal output.

Every failure an operator can cause (a missing client, a bad setting, an ERP
that refuses the credentials, a database that is not upgraded) prints one
line saying what is wrong and exits 1; tracebacks are for bugs only.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from click.shell_completion import CompletionItem
from rich.console import Console
from rich.text import Text
from sqlalchemy.exc import OperationalError, ProgrammingError

from connectors.base import ConnectorError
from hub.crypto import SecretsError
from hub.orders import ReplayError
from workers import kinds
from workers.sources import SetupError

# Piped output (CI logs, files) gets a width that fits the run tables
# instead of rich's 80-column fallback.
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    def show(self, file: Any = None) -> None:
        # Driver messages may span lines; an operator's error is one line.
        text = " ".join(self.message.split())
        err_console.print(f"[bold red]error:[/] {text}", highlight=False, soft_wrap=True)


def friendly(fn: F) -> F:
    """Turn the errors an operator can cause into one clear line."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (SetupError, SecretsError, ReplayError) as exc:
            raise CliError(str(exc)) from None
        except ConnectorError as exc:
            hint = f" — {exc.hint}" if exc.hint else ""
            raise CliError(f"{exc.message}{hint}") from None
        except (OperationalError, ProgrammingError) as exc:
            text = str(exc.orig) if exc.orig is not None else str(exc)
            if "no such table" in text or ("does not exist" in text and "relation" in text):
                raise CliError(
                    "the hub's database has no tables yet: run 's2s db upgrade'"
                ) from None
            raise CliError(f"the hub's database is unreachable: {text.splitlines()[0]}") from None

    return wrapper  # type: ignore[return-value]


class KindType(click.ParamType):  # type: ignore[type-arg]
    """An ERP kind, one of the registry's (``workers.kinds``).

    The names are read when the option is parsed, not when the CLI is
    imported, so a kind registered later is a choice too; an unknown kind is
    the same one line as everywhere else, not click's usage text.
    """

    name = "kind"

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return f"[{'|'.join(kinds.names())}]"

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        return [CompletionItem(name) for name in kinds.names() if name.startswith(incomplete)]

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if value not in kinds.KINDS:
            raise CliError(str(kinds.UnknownKind(str(value))))
        return str(value)


def say(text: str, *, err: bool = False) -> None:
    """Print operator-facing text verbatim on one line.

    Order codes, SKUs and ERP messages come from outside: rich must not read
    ``[...]`` in them as markup, and a long line must not be wrapped into two.
    """
    (err_console if err else console).print(text, markup=False, highlight=False, soft_wrap=True)


def say_facts(facts: list[tuple[str, str]]) -> None:
    """Name and value per line, the values aligned."""
    width = max(len(k) for k, _ in facts)
    for key, value in facts:
        say(f"{key:<{width}}  {value}")


def cell(value: Any) -> Text:
    """A table cell holding outside text literally (never as rich markup)."""
    return Text("" if value is None else str(value))


def stamp(at: Any) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at is not None else "-"


def short(text: str | None, width: int = 60) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def pages(run: Any) -> str:
    """Pages landed of pages known: '12/?' while the ERP is still being read."""
    total = run.pages_total if run.pages_total is not None else "?"
    return f"{run.pages_done}/{total}"
