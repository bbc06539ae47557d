"""Narrative XHTML (``Narrative.div``): between the JSON string and an lxml element.

In JSON the div is a string holding the XHTML; in XML it is the ``div`` element itself
in the XHTML namespace. Parsing and serialising go through lxml, so only the lexical
form can change, never the content. The serialiser below writes the form FHIR tools
write (``"`` escaped as ``&quot;`` in text, empty elements self-closed, ``xmlns`` on
the div only), so that JSON -> XML -> JSON gives back the same string for the spec's
own narratives. A carriage return survives as ``&#13;`` in XML, because a raw one would
be folded into the line break by any XML parser.

This module owns the XHTML only; the hardened parser comes from the caller.
"""

from __future__ import annotations

import re

from lxml import etree

XHTML_NS = "http://www.w3.org/1999/xhtml"
XML_NS = "http://www.w3.org/XML/1998/namespace"

_FORBIDDEN_MARKUP = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
# A start tag, with its quoted attribute values (which may hold ">").
_TAG = re.compile(r"""<[A-Za-z_][^<>"']*(?:(?:"[^"]*"|'[^']*')[^<>"']*)*>""")
_QUOTED = re.compile(r""""[^"]*"|'[^']*'""")


def _protect_attribute_whitespace(tag: re.Match) -> str:
    """Keep line breaks and tabs in attribute values as written.

    JSON narratives come from tools that keep them (the spec's own examples have
    multi-line ``title`` attributes); an XML parser would fold them into spaces.
    """
    return _QUOTED.sub(
        lambda quoted: quoted.group(0).replace("\n", "&#10;").replace("\t", "&#9;"), tag.group(0)
    )


def _escape_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _escape_attribute(text: str) -> str:
    # Line breaks stay raw, as JSON narratives carry them (see _protect_attribute_whitespace).
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _attribute_name(name: str, element: etree._Element, declarations: dict[str, str]) -> str:
    if name[0] != "{":
        return name
    qname = etree.QName(name)
    if qname.namespace == XML_NS:
        return "xml:" + qname.localname
    prefix = next((p for p, ns in (element.nsmap or {}).items() if ns == qname.namespace and p), "ns0")
    declarations[prefix] = qname.namespace
    return f"{prefix}:{qname.localname}"


def _write(element: etree._Element, out: list[str], parent_ns: str | None) -> None:
    tag = element.tag
    if not isinstance(tag, str):  # comment or processing instruction
        if isinstance(element, etree._Comment):
            out.append(f"<!--{element.text or ''}-->")
        if element.tail:
            out.append(_escape_text(element.tail))
        return
    qname = etree.QName(tag)
    namespace = qname.namespace
    out.append("<" + qname.localname)
    if namespace != parent_ns:
        out.append(f' xmlns="{_escape_attribute(namespace or "")}"')
    declarations: dict[str, str] = {}
    attributes = [
        f' {_attribute_name(name, element, declarations)}="{_escape_attribute(value)}"'
        for name, value in element.attrib.items()
    ]
    out.extend(f' xmlns:{prefix}="{_escape_attribute(ns)}"' for prefix, ns in declarations.items())
    out.extend(attributes)
    if element.text is None and len(element) == 0:
        out.append("/>")
    else:
        out.append(">")
        if element.text:
            out.append(_escape_text(element.text))
        for child in element:
            _write(child, out, namespace)
        out.append(f"</{qname.localname}>")
    if element.tail and parent_ns is not None:
        out.append(_escape_text(element.tail))


def div_to_string(div: etree._Element) -> str:
    """The JSON ``text.div`` string for an XHTML ``div`` element."""
    out: list[str] = []
    _write(div, out, None)
    return "".join(out)


def string_to_div(text: str, parser: etree.XMLParser) -> etree._Element:
    """The XHTML element for a JSON ``text.div`` string; raises ``etree.XMLSyntaxError``
    for text that is not well-formed XML, ``ValueError`` for anything but an XHTML div."""
    if "<!" in text and _FORBIDDEN_MARKUP.search(text):
        raise ValueError("a DOCTYPE or ENTITY declaration is not allowed in the narrative")
    # A raw CR would be normalised away by the parser; as a character reference it stays.
    text = text.replace("\r", "&#13;")
    if "\n" in text or "\t" in text:
        text = _TAG.sub(_protect_attribute_whitespace, text)
    div = etree.fromstring(text.encode("utf-8"), parser)
    if div.getroottree().docinfo.doctype:
        raise ValueError("a DOCTYPE is not allowed in the narrative")
    if div.tag != f"{{{XHTML_NS}}}div":
        raise ValueError("the narrative must be a <div> element in the XHTML namespace")
    return div
