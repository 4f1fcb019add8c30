"""What every command shares: the consoles, one-line errors, literal output,
tables that never cut a sentence, and JSON for scripts.

Every failure an operator can cause (a missing client, a bad setting, an ERP
that refuses the credentials, a database that is not upgraded) prints one
line saying what is wrong and exits 1; tracebacks are for bugs only.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

import click
from click.shell_completion import CompletionItem
from rich.console import Console, ConsoleOptions
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import OperationalError, ProgrammingError

from connectors.base import ConnectorError
from hub.crypto import SecretsError
from hub.orders import ReplayError
from workers import kinds
from workers.sources import SetupError


def _width(tty: bool) -> int | None:
    """A terminal's own width; piped output (CI logs, files) the width COLUMNS
    gives, else one that fits the run tables instead of rich's 80 columns."""
    if tty:
        return None
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 0 else 140


console = Console(width=_width(sys.stdout.isatty()))
err_console = Console(stderr=True, width=_width(sys.stderr.isatty()))

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


def pages(run: Any) -> str:
    """Pages landed of pages known: '12/?' while the ERP is still being read."""
    total = run.pages_total if run.pages_total is not None else "?"
    return f"{run.pages_done}/{total}"


def flat(text: str | None) -> str:
    """Outside free text (an error, the ERP's words) on one line, whole."""
    return " ".join((text or "").split())


# Below this many characters a folded column of sentences is harder to read
# than the sentence on a line of its own.
TEXT_MIN = 30
# A column's padding and its border.
_COLUMN_EDGE = 3


class Listing:
    """A table of short cells whose sentences (errors, the ERP's words) are never cut.

    The sentence is the point of these columns: cut to a column's width, it
    loses the part that says what to fix. Where the terminal leaves room,
    each sentence column folds over as many lines as it needs; where it
    does not (a folded column a few letters wide reads as noise), the table
    goes without those columns and each sentence follows it, whole, on a
    line of its own named by its row. Decided when printed, at the width of
    the console it is printed on.
    """

    def __init__(
        self, texts: Sequence[str], *, title: str | None = None, caption: str | None = None
    ) -> None:
        self.texts = tuple(texts)
        self.title = title
        self.caption = caption
        self._columns: list[tuple[str, dict[str, Any]]] = []
        self._rows: list[tuple[str, list[Text], list[str]]] = []

    def column(self, name: str, **options: Any) -> None:
        """A short column; ``options`` are rich's (justify, no_wrap, ...)."""
        self._columns.append((name, options))

    def row(self, label: str, cells: Sequence[Any], texts: Sequence[str | None]) -> None:
        """One row: ``label`` names it above its sentences ("run 12")."""
        shown = [c if isinstance(c, Text) else cell(c) for c in cells]
        self._rows.append((label, shown, [flat(t) for t in texts]))

    def table(self, *, with_texts: bool = True) -> Table:
        table = Table(title=self.title, caption=self.caption)
        for name, options in self._columns:
            table.add_column(name, **options)
        for name in self.texts if with_texts else ():
            table.add_column(name, overflow="fold", no_wrap=False)
        for _, cells, texts in self._rows:
            table.add_row(*cells, *(Text(t) for t in texts if with_texts))
        return table

    def _room_wanted(self) -> int:
        wanted = 0
        for index, name in enumerate(self.texts):
            longest = max((len(texts[index]) for _, _, texts in self._rows), default=0)
            wanted += min(TEXT_MIN, max(longest, len(name))) + _COLUMN_EDGE
        return wanted

    def fits(self, console: Console, options: ConsoleOptions) -> bool:
        """Whether the sentences fold in their columns at this width; else
        they follow the table."""
        bare = self.table(with_texts=False)
        natural = Measurement.get(console, options, bare).maximum
        return natural + self._room_wanted() <= options.max_width

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Any]:
        if self.fits(console, options):
            yield self.table()
            return
        yield self.table(with_texts=False)
        for label, _, texts in self._rows:
            for name, text in zip(self.texts, texts, strict=True):
                if text:
                    yield Text(f"{label} {name}: {text}", overflow="fold")


def iso(at: datetime | None) -> str | None:
    """A time for scripts: ISO 8601 with its UTC offset."""
    return at.isoformat() if at is not None else None


def print_json(doc: Any) -> None:
    """For scripts: one JSON document on stdout and nothing else (no rich
    wrapping or colour; texts whole)."""
    click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
