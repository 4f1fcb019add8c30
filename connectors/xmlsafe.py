"""Parsing XML that came from an ERP, with no document type and no entities.

iSync (SOAP) and SYSPRO (e.net) answer in XML. An answer that declares a
DOCTYPE or entities is either a misconfigured proxy or an attack (billion
laughs, external entities reading local files); no genuine answer of either
ERP needs one. So such a document is refused before the parser sees it, and
nothing is ever expanded or fetched. The quick byte check gives the clear
message; the parse itself is defusedxml's with DTDs forbidden, so a
declaration the byte check cannot see (a UTF-16 document, whose bytes hold
no ASCII ``<!DOCTYPE``) is refused all the same, never expanded.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as _defused_fromstring

_DECLARATION = re.compile(rb"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST|NOTATION)", re.IGNORECASE)


class UnsafeXmlError(ValueError):
    """The document declares a DOCTYPE or entities, which this hub never expands."""


class BadXmlError(ValueError):
    """The document is not well-formed XML."""


def parse(data: str | bytes, *, what: str = "the answer") -> ET.Element:
    """The root element of ``data``; UnsafeXmlError or BadXmlError otherwise.

    ``what`` names the document in the error, for example "iSync's
    GetProducts answer", so that an operator knows which call misbehaved.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    found = _DECLARATION.search(raw)
    if found is not None:
        kind = found.group(1).decode("ascii").upper()
        raise UnsafeXmlError(
            f"{what} declares {'a DOCTYPE' if kind == 'DOCTYPE' else 'an ' + kind}, "
            "which is refused: it is never expanded"
        )
    try:
        return _defused_fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise UnsafeXmlError(
            f"{what} declares a DOCTYPE or entities, which is refused: it is never expanded"
        ) from None
    except ET.ParseError as exc:
        raise BadXmlError(f"{what} is not well-formed XML ({exc})") from None
    except ValueError as exc:  # expat: "multi-byte encodings are not supported"
        raise BadXmlError(f"{what} is not XML the hub can read ({exc})") from None


def local(tag: str) -> str:
    """A tag without its namespace, lower-cased: answers vary in both."""
    return tag.rsplit("}", 1)[-1].lower()


def child(node: ET.Element, name: str) -> ET.Element | None:
    """The first direct child called ``name``, ignoring namespace and case."""
    wanted = name.lower()
    for item in node:
        if local(item.tag) == wanted:
            return item
    return None


def children(node: ET.Element, name: str) -> Iterator[ET.Element]:
    """Every direct child called ``name``, ignoring namespace and case."""
    wanted = name.lower()
    return (item for item in node if local(item.tag) == wanted)


def find(node: ET.Element, name: str) -> ET.Element | None:
    """The first descendant (or ``node`` itself) called ``name``, ignoring namespace and case."""
    wanted = name.lower()
    for item in node.iter():
        if local(item.tag) == wanted:
            return item
    return None


def text_of(node: ET.Element | None, name: str | None = None) -> str | None:
    """Stripped text of ``node`` (or of its descendant ``name``); None when absent or empty."""
    if node is not None and name is not None:
        node = find(node, name)
    if node is None or node.text is None:
        return None
    value = node.text.strip()
    return value or None
