"""A client's sales channels as records: declared, validated, encrypted, listed.

A channel (a Shopify or WooCommerce store) carries the intake settings the
webhook handler needs today (the signing secret, the add-order status) and
the settings the product push will need (the store's address and
credentials, the price tiers, the warehouses, which products it carries).
Push settings are optional, so an intake-only channel stays valid.

Settings are validated per kind with a marshmallow schema; secret settings
are split off and encrypted with ``hub.crypto`` exactly as a source's are, and
the plain ones are stored as declared (defaults are applied on reading, by
``resolved_settings``), so a declaration reads back as it was written. Error
messages name the client, channel and setting, never a secret's value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

import marshmallow
from marshmallow import fields, validate
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import crypto, schedule
from hub.models import Channel, Client, utcnow
from workers import kinds

KINDS: tuple[str, ...] = kinds.channel_names()
DEFAULT_API_VERSION = "2025-10"
DEFAULT_PRICE_TIER = "retail"
ALL_ACTIVE = "all_active"
DEFAULT_PUSH_SCHEDULE = "15m"
DEFAULT_BULK_THRESHOLD = 1000

MASK = "***"

_SHOPIFY_URL = re.compile(r"^https://[a-z0-9][a-z0-9-]*\.myshopify\.com/?$")
_SITE_URL = re.compile(r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
_HTTPS_SITE_URL = re.compile(r"^https://[^\s/?#]+(/[^\s?#]*)?$")
_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class ChannelError(Exception):
    """A channel declaration that cannot be applied; the message says why."""


def _carries(value: Any) -> None:
    """``all_active`` or one ``{field: value}`` on a product field."""
    if value == ALL_ACTIVE:
        return
    if isinstance(value, dict) and len(value) == 1:
        (field, wanted), *_ = value.items()
        if isinstance(field, str) and field.strip() and isinstance(wanted, str | int | bool):
            return
    raise marshmallow.ValidationError(
        f"must be {ALL_ACTIVE!r} or one product field and value ({{field: value}})"
    )


class _ChannelSchema(marshmallow.Schema):
    """Settings every channel kind has; kinds add their address and credentials."""

    secret_fields: ClassVar[frozenset[str]] = frozenset({"secret"})
    site_url: ClassVar[re.Pattern[str]] = _SITE_URL
    site_url_hint: ClassVar[str] = "the store's address, https://..."

    secret = fields.String()
    add_order_status = fields.String(validate=validate.Length(min=1, max=64))
    store_url = fields.String()
    price_tier = fields.String(validate=validate.Length(min=1, max=64))
    compare_at_tier = fields.String(allow_none=True, validate=validate.Length(min=1, max=64))
    warehouses = fields.List(fields.String(validate=validate.Length(min=1, max=64)))
    carries = fields.Raw(validate=_carries)
    # The push: how often beat pushes (an interval such as "15m" or a cron
    # line), how many pushes of this store may run at once, from how many
    # products a first push goes by the store's bulk import (0: never), and
    # whether a plain-HTTP address is accepted (a local emulator only).
    schedule = fields.String(validate=validate.Length(min=1, max=120))
    concurrency = fields.Integer(validate=validate.Range(min=1, max=8))
    bulk_threshold = fields.Integer(validate=validate.Range(min=0))
    allow_http = fields.Boolean()

    @marshmallow.pre_load
    def _from_text(self, data: Any, **_: Any) -> Any:
        """Command-line values arrive as text: ``a,b`` lists, ``field=value`` filters."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        if isinstance(out.get("warehouses"), str):
            out["warehouses"] = [w.strip() for w in out["warehouses"].split(",") if w.strip()]
        carries = out.get("carries")
        if isinstance(carries, str) and carries != ALL_ACTIVE and "=" in carries:
            field, _sep, wanted = carries.partition("=")
            out["carries"] = {field.strip(): wanted.strip()}
        return out

    @marshmallow.validates_schema
    def _store_url(self, data: dict[str, Any], **_: Any) -> None:
        value = data.get("store_url")
        if value is None:
            return
        if data.get("allow_http") and _SITE_URL.match(value.strip()):
            return
        if not self.site_url.match(value.strip()):
            raise marshmallow.ValidationError(
                f"must be {self.site_url_hint} (allow_http: true accepts a local "
                "http:// address, for testing against an emulator)",
                "store_url",
            )

    @marshmallow.validates("schedule")
    def _schedule(self, value: str, **_: Any) -> None:
        try:
            schedule.parse(value)
        except ValueError as exc:
            raise marshmallow.ValidationError(str(exc)) from None


class ShopifySchema(_ChannelSchema):
    secret_fields = frozenset({"secret", "access_token"})
    site_url = _SHOPIFY_URL
    site_url_hint = "https://<shop>.myshopify.com"

    access_token = fields.String()
    # The location whose stock the store shows: its name or global id
    # (default: the store's first location).
    location = fields.String(validate=validate.Length(min=1, max=200))
    api_version = fields.String(
        validate=validate.Regexp(r"^(\d{4}-(01|04|07|10)|unstable)$", error="must be like 2025-10")
    )


class WooCommerceSchema(_ChannelSchema):
    secret_fields = frozenset({"secret", "consumer_key", "consumer_secret"})
    # WooCommerce honours key-and-secret auth only over HTTPS; over plain
    # HTTP the keys would cross the network in clear.
    site_url = _HTTPS_SITE_URL
    site_url_hint = "the store's address, https://..."

    consumer_key = fields.String()
    consumer_secret = fields.String()
    # What a product deleted in the ERP (or no longer carried) becomes in the
    # store: a draft (default, reversible) or trashed.
    deleted = fields.String(validate=validate.OneOf(("draft", "trash")))


SCHEMAS: dict[str, type[_ChannelSchema]] = {
    "shopify": ShopifySchema,
    "woocommerce": WooCommerceSchema,
}


@dataclass(frozen=True)
class Declared:
    """A checked declaration, ready to store: plain settings and every secret."""

    code: str
    kind: str
    settings: dict[str, Any]
    secrets: dict[str, str]


def schema_for(kind: str, where: str) -> type[_ChannelSchema]:
    if kind not in SCHEMAS:
        raise ChannelError(f"{where}: unknown channel (known: {', '.join(KINDS)})")
    return SCHEMAS[kind]


def known_settings(kind: str) -> list[str]:
    return sorted(SCHEMAS[kind]().fields)


def get_channel(session: Session, client: Client, code: str) -> Channel | None:
    return session.scalars(
        select(Channel).where(Channel.client_id == client.id, Channel.code == code)
    ).first()


def _secret_value(spec: dict[str, Any], name: str, where: str) -> str:
    value = spec[name]
    if value is not None and not isinstance(value, str):
        raise ChannelError(f"{where}: {name} must be text (quote it in YAML)")
    if value is None or not value.strip():
        raise ChannelError(f"{where}: {name} is empty")
    return value.strip()


def check(
    session: Session, client: Client, code: str, kind: str, spec: dict[str, Any] | None
) -> Declared:
    """Validate one channel's declaration against what is stored; changes nothing.

    Plain settings are replaced by what is declared (as a source's are), so a
    file says exactly what holds; a secret left out keeps the stored one, so
    a status can be changed without handling the secret again, but a secret
    given empty is an error (an unset ``${ENV}`` must not leave the old key).
    """
    where = f"client {client.code!r} channel {code!r}"
    schema_cls = schema_for(kind, where)
    if not _CODE.match(code):
        raise ChannelError(f"{where}: a channel code is lower-case letters, digits, - and _")
    spec = {} if spec is None else spec
    if not isinstance(spec, dict):
        raise ChannelError(f"{where}: expected 'secret' and optionally 'add_order_status'")
    unknown = sorted(str(k) for k in set(spec) - set(known_settings(kind)))
    if unknown:
        raise ChannelError(
            f"{where}: unknown setting {', '.join(unknown)} "
            f"(known: {', '.join(known_settings(kind))})"
        )
    existing = get_channel(session, client, code)
    if existing is not None and existing.kind != kind:
        raise ChannelError(f"{where}: is a {existing.kind} channel, not {kind}")
    secrets = crypto.decrypt(existing.secrets) if existing is not None else {}
    for name in sorted(schema_cls.secret_fields & set(spec)):
        secrets[name] = _secret_value(spec, name, where)
    if not secrets.get("secret"):
        raise ChannelError(f"{where}: needs 'secret', the channel's webhook signing secret")
    status = spec.get("add_order_status")
    if status is not None and (not isinstance(status, str) or not status.strip()):
        raise ChannelError(f"{where}: add_order_status must be a non-empty status name")
    if status is not None and len(status.strip()) > 64:
        raise ChannelError(f"{where}: add_order_status is longer than 64 characters")
    plain = {k: v for k, v in spec.items() if k not in schema_cls.secret_fields}
    plain = {k: v.strip() if isinstance(v, str) else v for k, v in plain.items() if v is not None}
    try:
        settings = schema_cls().load(plain)
    except marshmallow.ValidationError as exc:
        problems: Any = exc.messages
        if not isinstance(problems, dict):
            raise ChannelError(f"{where}: {_words(problems)}") from None
        first = sorted(problems, key=str)[0]
        raise ChannelError(f"{where}: {first}: {_words(problems[first])}") from None
    return Declared(code, kind, settings, {k: str(v) for k, v in secrets.items() if v})


def _words(messages: Any) -> str:
    if isinstance(messages, list):
        return "; ".join(_words(m) for m in messages)
    if isinstance(messages, dict):
        return "; ".join(f"{k}: {_words(v)}" for k, v in sorted(messages.items(), key=str))
    return str(messages)


def store(session: Session, client: Client, declared: Declared) -> Channel:
    """Write a checked declaration: the channel's row, created or replaced."""
    row = get_channel(session, client, declared.code)
    if row is None:
        row = Channel(client_id=client.id, code=declared.code, kind=declared.kind)
        session.add(row)
    row.settings = dict(declared.settings)
    row.secrets = crypto.encrypt(declared.secrets)
    # A pushing channel's first scheduled push; a changed schedule counts
    # from now. An intake-only channel has none.
    if pushes(row):
        every = schedule.parse(resolved_settings(row)["schedule"])
        row.next_push_at = every.next_due(utcnow())
    else:
        row.next_push_at = None
    session.flush()
    return row


def declare(
    session: Session, client: Client, code: str, kind: str, spec: dict[str, Any] | None
) -> Channel:
    """Check then store one channel (``s2s channel add``)."""
    return store(session, client, check(session, client, code, kind, spec))


def list_channels(session: Session, client: Client | None = None) -> list[Channel]:
    """Channels by client then code; one client's when given."""
    query = select(Channel).order_by(Channel.client_id, Channel.code)
    if client is not None:
        query = query.where(Channel.client_id == client.id)
    return list(session.scalars(query))


def secrets_of(channel: Channel) -> dict[str, Any]:
    """The channel's secret settings: only ever handed to the code that uses them."""
    return crypto.decrypt(channel.secrets)


def resolved_settings(channel: Channel) -> dict[str, Any]:
    """The plain settings with every default filled in, as the push reads them."""
    out: dict[str, Any] = {
        "price_tier": DEFAULT_PRICE_TIER,
        "compare_at_tier": None,
        "warehouses": [],
        "carries": ALL_ACTIVE,
        "schedule": DEFAULT_PUSH_SCHEDULE,
        "concurrency": 1,
        "bulk_threshold": DEFAULT_BULK_THRESHOLD,
        "allow_http": False,
    }
    if channel.kind == "shopify":
        out["api_version"] = DEFAULT_API_VERSION
    if channel.kind == "woocommerce":
        out["deleted"] = "draft"
    out.update(channel.settings or {})
    return out


def pushes(channel: Channel) -> bool:
    """Whether the hub pushes products to this channel: a kind it can push to,
    with the store's address set (an intake-only channel has none)."""
    return channel.kind in kinds.pushing_channel_names() and bool(
        (channel.settings or {}).get("store_url")
    )


def public_view(channel: Channel) -> dict[str, Any]:
    """What ``s2s channel show`` prints: secrets masked as ``***``, never shown."""
    stored = secrets_of(channel)
    shown: dict[str, Any] = resolved_settings(channel)
    for name in sorted(SCHEMAS[channel.kind].secret_fields):
        shown[name] = MASK if stored.get(name) else "(not set)"
    return {"code": channel.code, "kind": channel.kind, "settings": shown}
