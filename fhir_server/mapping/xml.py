"""XML documents (CDA, HL7 v3 messages) → FHIR through XPath specs, with a hardened parser.

The parser loads no DTD, expands no entity, never touches the network and refuses a
DOCTYPE outright (entity bombs and external entities need one); documents are size-limited
before parsing. Specs select with XPath 1.0 using the namespace prefixes they declare.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from fhir_server.formats import untrusted_xml
from fhir_server.mapping.engine import MappingResult, Run, Source, run_spec
from fhir_server.mapping.errors import UNSUPPORTED_MESSAGE_TYPE, MappingError
from fhir_server.mapping.specs import ResourceDef, Rule, Spec

MAX_XML_BYTES = 10 * 1024 * 1024

TEL_USE = {"HP": "home", "H": "home", "WP": "work", "MC": "mobile", "TMP": "temp"}
NAME_USE = {"L": "official", "P": "nickname", "A": "anonymous", "C": "official"}


class XmlError(MappingError):
    """The document is not acceptable XML (malformed, a DOCTYPE, too large)."""

    def __init__(self, message: str):
        super().__init__(message, "100", "", reject=True)


def parse_xml(raw: bytes, max_bytes: int = MAX_XML_BYTES) -> etree._Element:
    """Parse a legacy document with the hardened parser; its XML declaration names the charset (GBK is common)."""
    try:
        return untrusted_xml.parse(raw, max_bytes, encoding=None, remove_comments=True)
    except untrusted_xml.RefusedXml as exc:
        message = str(exc)
        if exc.reason == "malformed":
            message = "XML is not well-formed: " + message.removeprefix("Malformed XML: ")
        raise XmlError(message) from None


@dataclass(frozen=True)
class XPathExpr:
    text: str
    xpath: etree.XPath


def compile_xpath(namespaces: dict[str, str]):
    def compile_one(text: str) -> XPathExpr:
        try:
            return XPathExpr(text, etree.XPath(text, namespaces=namespaces))
        except etree.XPathSyntaxError as exc:
            raise ValueError(f"{text!r} is not a valid XPath: {exc}") from None

    return compile_one


def _local(tag) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


class _Key:
    __slots__ = ("value",)

    def __init__(self, value: str):
        self.value = value

    def get(self, component: int, subcomponent=None) -> str:
        return self.value if component == 1 else ""


def _oid_system(oid: str) -> str:
    if not oid:
        return ""
    if oid[0].isdigit():
        return "urn:oid:" + oid
    return oid


class XmlSource(Source):
    def __init__(self, root: etree._Element):
        self.root = root
        self.touched: set = set()

    def anchors(self, rdef: ResourceDef) -> list:
        if rdef.anchor is None:
            return [self.root]
        return [n for n in rdef.anchor.xpath(self.root) if isinstance(n, etree._Element)]

    def group_of(self, anchor):
        return id(anchor) if anchor is not None else None

    def same_kind(self, a, b) -> bool:
        return a is not None and b is not None and a is not self.root and a.tag == b.tag

    def quantity(self, item):
        return (item.get("value"), item.get("unit")) if isinstance(item, etree._Element) else None

    def select(self, anchor, item, path: XPathExpr) -> list:
        context = item if isinstance(item, etree._Element) else (anchor if anchor is not None else self.root)
        result = path.xpath(context)
        if not isinstance(result, list):
            result = [] if result is None or result == "" or result is False else [str(result) if not isinstance(result, bool) else "true"]
        for node in result:
            if isinstance(node, etree._Element):
                self.touched.add(node)
            elif hasattr(node, "getparent") and node.getparent() is not None:
                self.touched.add(node.getparent())
        return result

    def text(self, item) -> str:
        if isinstance(item, etree._Element):
            value = item.get("value")  # TS, PQ, BL, INT carry their value in @value
            if value is not None:
                return value.strip()
            return "".join(item.itertext()).strip()
        return str(item).strip()

    def location(self, anchor, item, path) -> str:
        if isinstance(item, etree._Element):
            return "/" + "/".join(_local(n.tag) for n in reversed([item, *item.iterancestors()]))
        return getattr(path, "text", "")

    def composite(self, type_name: str, item, rule: Rule, run: Run):
        if not isinstance(item, etree._Element):
            raise MappingError(f"{rule.where}: type {type_name} needs an element, the XPath selected text")
        ns = {"h": item.nsmap.get(None) or "urn:hl7-org:v3"}
        child = lambda name: item.find(f"h:{name}", ns)  # noqa: E731
        children = lambda name: item.findall(f"h:{name}", ns)  # noqa: E731
        if type_name == "II":
            root, extension = item.get("root", ""), item.get("extension", "")
            if not root and not extension:
                return None
            out: dict = {}
            system = run.system_for(rule, None, _Key(root)) or _oid_system(root if extension else "")
            if system:
                out["system"] = system
            out["value"] = extension or ("urn:oid:" + root if root[:1].isdigit() else root)
            return out
        if type_name == "CD":
            code, display = item.get("code", ""), item.get("displayName", "")
            original = child("originalText")
            text = "".join(original.itertext()).strip() if original is not None else ""
            if not code and not text:
                return None
            coding: dict = {}
            system = run.system_for(rule, None, _Key(item.get("codeSystem", ""))) or _oid_system(item.get("codeSystem", ""))
            if system:
                coding["system"] = system
            if code:
                coding["code"] = code
            if display:
                coding["display"] = display
            codeable: dict = {"coding": [coding]} if code else {}
            if text or display:
                codeable["text"] = text or display
            return run.translate_coding(rule, codeable, None, item) if code else codeable
        if type_name == "PN":
            family = [("".join(f.itertext())).strip() for f in children("family")]
            given = [("".join(g.itertext())).strip() for g in children("given")]
            name: dict = {}
            if family or given:
                if family:
                    name["family"] = family[0]
                if given:
                    name["given"] = given
                whole = "".join(family + given)
                name["text"] = whole if any("\u3400" <= c <= "\u9fff" for c in whole) else " ".join(given + family)
            else:
                text = "".join(item.itertext()).strip()
                if text:
                    name["text"] = text
            use = NAME_USE.get(item.get("use", ""))
            if use and name:
                name["use"] = use
            return name or None
        if type_name == "AD":
            parts = {_local(c.tag): "".join(c.itertext()).strip() for c in item if isinstance(c.tag, str)}
            out = {}
            # Chinese structured addresses run from the larger unit to the house: 乡镇 街道 门牌
            street = "".join(parts.get(k, "") for k in ("township", "streetName", "houseNumber"))
            line = [x for x in (street, parts.get("streetAddressLine", "")) if x]
            if line:
                out["line"] = line
            for src, key in (("city", "city"), ("state", "state"), ("county", "district"), ("postalCode", "postalCode"), ("country", "country")):
                if parts.get(src):
                    out[key] = parts[src]
            whole = "".join(item.itertext()).strip() if not parts else "".join(
                parts.get(k, "") for k in ("state", "city", "county", "township", "streetName", "houseNumber", "streetAddressLine")
            )
            if whole:
                out["text"] = whole
            use = {"H": "home", "HP": "home", "WP": "work", "TMP": "temp"}.get(item.get("use", ""))
            if use and out:
                out["use"] = use
            return out or None
        if type_name == "TEL":
            value = item.get("value", "")
            if not value:
                return None
            system = "phone"
            for prefix, kind in (("tel:", "phone"), ("fax:", "fax"), ("mailto:", "email"), ("http:", "url"), ("https:", "url")):
                if value.startswith(prefix):
                    system = kind
                    if kind != "url":
                        value = value[len(prefix) :]
                    break
            out = {"system": system, "value": value}
            use = TEL_USE.get(item.get("use", ""))
            if use:
                out["use"] = use
            return out
        if type_name == "PQ":
            number = item.get("value", "")
            if not number:
                return None
            quantity: dict = {"value": run.scalar(Rule(where=rule.where, target=(), type="decimal"), number, None, item)}
            unit = item.get("unit", "")
            if unit:
                quantity.update({"unit": unit, "system": "http://unitsofmeasure.org", "code": unit})
            return quantity
        raise MappingError(f"{rule.where}: type {type_name!r} is not an XML data type this engine knows (II, CD, PN, AD, TEL, PQ)")

    def unused(self, spec: Spec) -> list[str]:
        """Elements with a value that no XPath reached (nor an ancestor/descendant of what it reached)."""
        reached = set()
        touched = set(self.touched)
        for path in spec.ignored_paths:
            touched.update(n for n in path.xpath(self.root) if isinstance(n, etree._Element))
        for node in touched:
            reached.add(node)
            reached.update(node.iterancestors())
            reached.update(node.iterdescendants())
        warnings, seen = [], set()
        for node in self.root.iter():
            if not isinstance(node.tag, str) or node in reached:
                continue
            has_value = (node.text and node.text.strip()) or any(k in node.attrib for k in ("value", "code", "extension"))
            if not has_value:
                continue
            path = "/" + "/".join(_local(n.tag) for n in reversed([node, *node.iterancestors()]))
            if path in seen:
                continue
            seen.add(path)
            warnings.append(f"{path} is not mapped by {spec.id}")
        if len(warnings) > 50:
            warnings = warnings[:50] + [f"… and {len(warnings) - 50} more unmapped elements"]
        return warnings


def find_spec(root: etree._Element, library) -> Spec | None:
    tag = root.tag if isinstance(root.tag, str) else ""
    for spec in library.xml_specs:
        if spec.root != tag:
            continue
        if spec.match is not None and not spec.match.xpath(root):
            continue
        return spec
    return None


def convert_document(raw: bytes, library, default_offset: str = "+08:00") -> MappingResult:
    root = parse_xml(raw)
    spec = find_spec(root, library)
    if spec is None:
        raise MappingError(f"no XML mapping spec for root element {root.tag}", UNSUPPORTED_MESSAGE_TYPE, "", reject=True)
    source = XmlSource(root)
    id_nodes = root.xpath("./*[local-name()='id'][1]")
    control_id = id_nodes[0].get("extension") or id_nodes[0].get("root", "") if id_nodes else ""
    sender_nodes = root.xpath(".//*[local-name()='sender']//*[local-name()='id'][1]")
    sender = (sender_nodes[0].get("extension") or sender_nodes[0].get("root", "")) if sender_nodes else ""
    bundle, warnings, instances = run_spec(spec, source, default_offset, seed=f"{sender}|{control_id}")
    return MappingResult(bundle, warnings, spec.id, instances, control_id=control_id, sender=sender,
                         message_type=etree.QName(root).localname)
