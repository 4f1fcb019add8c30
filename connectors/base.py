"""The contract every ERP connector follows, and the errors it speaks in.

Workers treat every connector alike: they load its settings, read pages,
raise orders, and decide what to do with a failure from the error's type
alone (retry a transient one, dead-letter a permanent one). Keeping that
surface small and typed is what lets a new ERP be added without touching the
workers.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, ClassVar, Self

import marshmallow
from marshmallow import pre_load


class ConnectorError(Exception):
    """A failure an operator can act on.

    ``str(error)`` is one sentence safe to show on a screen, in a log or in a
    dead letter: it never holds a password or another secret, because these
    messages travel further than the settings they came from. ``hint`` says
    what to change, when that is known.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, hint={self.hint!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (Celery results, multiprocessing);
        # the default reduction would drop the keyword-only attributes.
        return (type(self), (self.message,), dict(self.__dict__))


class TransientError(ConnectorError):
    """Worth retrying: timeouts, refused connections, 5xx, 429, a lost session."""

    def __init__(
        self, message: str, *, hint: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class PermanentError(ConnectorError):
    """Retrying cannot help: the work goes to the dead letters at once."""


class SettingsError(PermanentError):
    """The source's settings must change (credentials, a setting, a query)."""


class RejectedError(PermanentError):
    """The ERP refused a document; the document, not the settings, is at fault."""


class NotSupportedError(PermanentError):
    """The ERP has no such stream, which is an answer rather than a crash."""


# What ``Connector.raise_orders`` reports for one order: its document
# number, the error it met, or None when it was not sent.
RaiseOutcome = str | Exception | None


@dataclass
class Page:
    """One page of raw records, as the ERP spelled them.

    ``next_cursor`` is stored by the hub between pages and runs, so it must
    be JSON-serialisable; ``None`` means this page is the last.
    """

    records: list[dict[str, Any]]
    next_cursor: Any


def _flatten(messages: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Marshmallow nests errors by field; operators want ``field: reason`` pairs."""
    if isinstance(messages, Mapping):
        out: list[tuple[str, str]] = []
        for key, value in messages.items():
            name = str(key) if not prefix else f"{prefix}.{key}"
            if key == "_schema":
                name = prefix or "settings"
            out.extend(_flatten(value, name))
        return out
    if isinstance(messages, list | tuple):
        out = []
        for item in messages:
            out.extend(_flatten(item, prefix))
        return out
    return [(prefix or "settings", str(messages))]


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class SettingsSchema(marshmallow.Schema):
    """The base of every connector's settings schema.

    Forms and YAML files hand over ``""`` or ``null`` for a field left
    empty; both mean "use the default", which also keeps loading idempotent
    (a loaded default loads again unchanged). ``blank_kept`` names fields
    where a blank is a real value (a blank password); with
    ``blank_to_none`` a blank becomes ``None`` instead of being dropped,
    for schemas whose fields take ``None`` as "not set".
    """

    blank_kept: ClassVar[frozenset[str]] = frozenset()
    blank_to_none: ClassVar[bool] = False

    @pre_load
    def _blank_is_unset(self, data: Any, **_: Any) -> Any:
        if not isinstance(data, Mapping):
            return data

        def blank(key: str, value: Any) -> bool:
            if key in self.blank_kept:
                return False
            return isinstance(value, str) and not value.strip()

        if self.blank_to_none:
            return {key: (None if blank(key, v) else v) for key, v in data.items()}
        return {
            key: value
            for key, value in data.items()
            if value is not None and (key in self.blank_kept or not blank(key, value))
        }


class Connector(abc.ABC):
    """One ERP type. An instance holds one source's settings and connections.

    Instances are cheap to create and must be closed (or used as a context
    manager): they may hold connection pools, which must not outlive the task
    that needed them.
    """

    kind: ClassVar[str]
    title: ClassVar[str]
    streams: ClassVar[frozenset[str]]
    settings_schema: ClassVar[type[marshmallow.Schema]]
    # How many times a raise may meet a transient failure before the order is
    # dead-lettered; None means the hub's default (S2S_ORDER_MAX_ATTEMPTS).
    # An ERP with long maintenance windows or strict rate limits sets more.
    max_raise_attempts: ClassVar[int | None] = None
    # True when an incremental read (``since`` given) returns only the
    # variant lines that changed, not whole products (iSync): the hub then
    # merges those variants into the stored product instead of replacing its
    # variants, which would drop the unchanged ones.
    partial_incremental: ClassVar[bool] = False
    # Records per page when neither the source (``page_size``) nor the hub
    # (S2S_PAGE_SIZE) says: each page costs a fetch, a map task and a
    # transaction whatever its size (about 20 ms of worker and database time
    # measured on the sync benchmark), so a connector whose reads cost little
    # more for more rows asks for more.
    default_page_size: ClassVar[int] = 500

    @classmethod
    def load_settings(cls, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Validate raw settings, naming each bad field and never echoing a secret.

        Loading must be idempotent (its output loads again unchanged), since
        ``__init__`` validates once more: a connector built from stored
        settings that a newer version no longer accepts fails early and clearly.
        """
        try:
            return dict(cls.settings_schema().load(dict(raw)))
        except marshmallow.ValidationError as exc:
            secret_values = [
                str(raw[name]) for name in cls.secret_fields() if raw.get(name) not in (None, "")
            ]
            problems = _flatten(exc.messages)
            names = sorted({name for name, _ in problems})
            detail = "; ".join(
                f"{name}: {_scrub(reason, secret_values)}" for name, reason in problems
            )
            raise SettingsError(
                f"the {cls.title} settings are not valid: {detail}",
                hint=f"correct {', '.join(names)} in the source's settings",
            ) from None

    @classmethod
    def secret_fields(cls) -> frozenset[str]:
        """Fields that must be encrypted at rest and masked wherever shown."""
        return frozenset(
            name
            for name, field in cls.settings_schema().fields.items()
            if field.metadata.get("secret")
        )

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = self.load_settings(settings)

    # ---- what workers read besides pages and orders ----------------------

    # SELECT statements this connector has run, where it counts them (SYSPRO
    # promises three per page); the fetch task logs the difference per page.
    # None: not counted.
    queries: int | None = None

    @property
    def timeout(self) -> float:
        """Seconds one call to the ERP may take (the ``timeout`` setting, else 30).

        Workers size an account slot's lease from it: long enough for a read
        with its own retries, short enough that a killed worker frees the
        account in minutes.
        """
        value = self.settings.get("timeout")
        return float(value) if value else 30.0

    def high_water(self, records: Iterable[Mapping[str, Any]]) -> str | None:
        """The latest modification mark among raw ``records``, or None.

        The hub stores the highest one a run saw and passes it back as
        ``since`` on the next incremental run; None (the default) means the
        ERP's records carry no such mark, and incremental runs read all.
        """
        return None

    # ---- secrets ----------------------------------------------------------

    def extra_secrets(self) -> Iterable[str]:
        """Secrets derived from the settings or met while working (an encoded
        login token, a session id): hidden like the secret settings are."""
        return ()

    def secrets(self) -> tuple[str, ...]:
        """Every text that must never leave this connector, longest first, so
        that a secret containing another is replaced whole."""
        found: set[str] = set(self.extra_secrets())
        for name in self.secret_fields():
            value = self.settings.get(name)
            if value not in (None, ""):
                found.add(str(value))
        for text in list(found):
            stripped = text.strip()
            if stripped:
                found.add(stripped)
        return tuple(sorted((x for x in found if x), key=len, reverse=True))

    def _scrub(self, text: str) -> str:
        return _scrub(text, self.secrets())

    def _error(
        self, cls: type[ConnectorError], message: str, hint: str | None = None, **extra: Any
    ) -> ConnectorError:
        """Every error leaves through here, so no message can carry a secret."""
        return cls(self._scrub(message), hint=self._scrub(hint) if hint else None, **extra)

    @abc.abstractmethod
    def check(self) -> str:
        """Reach the ERP with these settings and say in one line what was found."""

    def read(self, stream: str, cursor: Any, limit: int, since: datetime | None = None) -> Page:
        """Read one page of ``stream`` after ``cursor`` (``None``: from the start).

        The stream check lives here so that every connector answers an
        unsupported stream the same way, and never with a crash. ``since`` is
        a hint: a connector that cannot filter by modification time ignores it
        and the hub's hashes find the changes.
        """
        if stream not in self.streams:
            offered = ", ".join(sorted(self.streams)) or "nothing"
            raise NotSupportedError(
                f"{self.title} does not sync {stream}; it offers {offered}.",
                hint=f"remove the {stream} stream from this source",
            )
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        return self._read(stream, cursor, limit, since)

    @abc.abstractmethod
    def _read(self, stream: str, cursor: Any, limit: int, since: datetime | None) -> Page:
        """``read`` for a stream this connector offers."""

    @abc.abstractmethod
    def raise_order(self, payload: dict[str, Any]) -> str:
        """Put one order into the ERP and return the ERP's document number.

        Must be safe to call again for the same order: the caller retries
        after ambiguous failures and calls ``find_order`` first when it can.
        """

    @abc.abstractmethod
    def find_order(self, reference: str, channel: str | None = None) -> str | None:
        """The document number of an order already raised under ``reference``
        (the channel's order number). ``channel``: the sales channel it came
        from, for an ERP whose order reference names it (SYSPRO's
        ``po_number`` template); the others look the number up alone."""

    def raise_orders(self, payloads: Sequence[dict[str, Any]]) -> list[RaiseOutcome]:
        """Put several orders into the ERP: one outcome per payload, in order.

        Each outcome is the ERP's document number, the error that order met
        (a ``PermanentError`` refuses that order alone; a ``TransientError``
        may be retried), or ``None`` for an order not sent at all. The hub
        raises a source's queued orders in batches through this method, so
        an ERP that can take many orders at once (one transaction, one
        request) overrides it; this default sends them one by one, so one
        refused order never stops the others. It stops at the first
        transient failure, since the ERP is then likely down, and reports
        the orders after it as not sent (the hub queues them again without
        spending one of their attempts). An error that is not a connector
        error (a bug) is reported for its order alone.

        An error raised out of this method (instead of returned) stands for
        every order of the batch; after a transient one the hub asks
        ``find_order`` before sending any of them again.
        """
        outcomes: list[RaiseOutcome] = []
        for index, payload in enumerate(payloads):
            try:
                outcomes.append(self.raise_order(payload))
            except TransientError as exc:
                outcomes.append(exc)
                outcomes.extend([None] * (len(payloads) - index - 1))
                break
            except Exception as exc:  # reported for this order alone
                outcomes.append(exc)
        return outcomes

    def session_key(self) -> str | None:
        """The ERP account this source logs in as, when the ERP allows few sessions.

        iSync ends an account's earlier session at every login and SYSPRO
        allows one session per operator, so two workers (or two sources)
        using one account would log each other out. Workers hold a slot
        keyed by this value, shared through Redis, around every read and
        every raise; ``session_limit`` slots exist per key. The key must not
        contain a secret (hash the account's name with the service's URL).
        ``None``: the ERP has no such limit, and only the source's own
        concurrency applies.
        """
        return None

    session_limit: ClassVar[int] = 1

    def close(self) -> None:
        """Release connections; the default holds none."""
        return None

    def release(self) -> None:
        """Let go of idle connections after a task; the connector stays usable.

        Workers call this when a task that used the connector ends, so that
        no database connection, keep-alive socket or e.net session is held
        between tasks: on a client's site each is a seat on its SQL Server, a
        licence or a socket through a VPN, and a worker serves hundreds of
        clients. The next call reconnects. Connectors whose set-up is worth
        keeping (an engine's compiled statements, a logged-in session key
        that costs a login) override this to drop only the connections.
        """
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
