"""Parsing XML that comes from outside: no DTD, no entity expansion, no network, bounded size.

The one place the hardened lxml set-up lives; the FHIR XML format and the legacy XML
documents (CDA, HL7 v3) both parse through it. libxml2 with ``resolve_entities=False`` still
expands internal entities in attribute values and opens a ``SYSTEM`` external subset, so a
DOCTYPE or ENTITY declaration is refused by a byte scan before the parser sees the document,
and checked again on the parsed tree.
"""

from __future__ import annotations

import re
import threading

from lxml import etree

FORBIDDEN_MARKUP = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)

_local = threading.local()


class RefusedXml(ValueError):
    """The document was refused; ``reason`` is ``too-large``, ``dtd`` or ``malformed``."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def parser(encoding: str | None = "utf-8", remove_comments: bool = False) -> etree.XMLParser:
    """The hardened parser for these options, one per thread (lxml parsers are not thread-safe)."""
    key = (encoding, remove_comments)
    cache = getattr(_local, "parsers", None)
    if cache is None:
        cache = _local.parsers = {}
    if key not in cache:
        cache[key] = etree.XMLParser(
            encoding=encoding,
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_pis=True,
            remove_comments=remove_comments,
            collect_ids=False,
        )
    return cache[key]


def refuse_declarations(data: bytes) -> None:
    if FORBIDDEN_MARKUP.search(data):
        raise RefusedXml("dtd", "XML with a DOCTYPE or ENTITY declaration is not accepted (no DTDs, no entities)")


def parse(data: bytes, max_bytes: int | None = None, encoding: str | None = "utf-8",
          remove_comments: bool = False) -> etree._Element:
    """Parse an untrusted document; ``encoding=None`` lets the XML declaration choose (e.g. GBK)."""
    if max_bytes is not None and len(data) > max_bytes:
        raise RefusedXml("too-large", f"XML document of {len(data)} bytes exceeds the limit of {max_bytes} bytes")
    refuse_declarations(data)
    try:
        root = etree.fromstring(data, parser(encoding, remove_comments))
    except etree.XMLSyntaxError as exc:
        raise RefusedXml("malformed", f"Malformed XML: {exc}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:  # belt and braces: refused above
        raise RefusedXml("dtd", "XML with a DOCTYPE / DTD is not accepted")
    return root
