"""FHIR XML (``application/fhir+xml``, R4 4.0.1), both directions, via the JSON dict.

The server keeps resources as FHIR JSON; XML is converted at the edge. The rules are the
spec's "XML Representation of Resources" against its "JSON Representation":

* the root element names the resource type, everything lives in ``http://hl7.org/fhir``;
* a primitive's value is the ``value`` attribute; ``Element.id`` and ``Extension.url``
  are attributes, while ``Resource.id`` is an element;
* a primitive's ``id`` and ``extension`` go to the JSON ``_name`` companion (for repeating
  primitives, ``_name`` is an array aligned with ``name``, ``null`` where a position has
  none);
* which elements repeat, which are primitives and their JSON type, and the XML element
  order come from :mod:`fhir_server.formats.type_metadata`;
* a nested resource (``contained``, ``Bundle.entry.resource``, ``Parameters.parameter.resource``)
  is wrapped in an element named for the field;
* ``Narrative.div`` is XHTML, a string in JSON (:mod:`fhir_server.formats.xhtml`).

Untrusted input: the parser is configured never to load a DTD, resolve entities or touch
the network, and any DOCTYPE or ENTITY declaration is refused before libxml2 sees it: with
those options alone, internal entities still expand inside attribute values and a
``SYSTEM "file:///..."`` external subset is still opened. FHIR resources are UTF-8 and the
parser is told so, so the byte scan sees what the parser sees.
"""

from __future__ import annotations

import re
from decimal import Decimal

from lxml import etree

from fhir_server.errors import FhirError
from fhir_server.formats import type_metadata as meta
from fhir_server.formats import untrusted_xml
from fhir_server.formats.xhtml import XHTML_NS, div_to_string, string_to_div

FHIR_NS = "http://hl7.org/fhir"
_F = "{" + FHIR_NS + "}"
_F_LENGTH = len(_F)
_XHTML_DIV = "{" + XHTML_NS + "}div"

DEFAULT_MAX_BYTES = 32 * 1024 * 1024
_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'

_INTEGER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_DECIMAL_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")
_ENCODING_RE = re.compile(rb"""^\s*<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def _parser() -> etree.XMLParser:
    """The hardened parser (see fhir_server.formats.untrusted_xml)."""
    return untrusted_xml.parser("utf-8")


def _structure_error(message: str, path: str | None = None) -> FhirError:
    return FhirError(400, message, "structure", [path] if path else None)


# ---------------------------------------------------------------------------- XML -> JSON


def xml_to_resource(data: bytes, max_bytes: int | None = DEFAULT_MAX_BYTES) -> dict:
    """Parse a FHIR XML resource into its FHIR JSON dict (decimals as ``Decimal``)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if max_bytes is not None and len(data) > max_bytes:
        raise FhirError(413, f"XML body of {len(data)} bytes exceeds the limit of {max_bytes} bytes", "too-costly")
    _check_prolog(data)
    try:
        root = untrusted_xml.parse(data, encoding="utf-8")
    except untrusted_xml.RefusedXml as exc:
        raise _structure_error(str(exc)) from None
    try:
        return _read_resource(root, "")
    except RecursionError:
        raise _structure_error("The XML is nested too deeply") from None


def _check_prolog(data: bytes) -> None:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b"\x00" in data:
        raise _structure_error("FHIR XML must be encoded in UTF-8")
    match = _ENCODING_RE.match(data[:512])
    if match and match.group(1).lower().replace(b"_", b"-") not in (b"utf-8", b"utf8"):
        raise _structure_error(f"FHIR XML must be encoded in UTF-8, not {match.group(1).decode('ascii')}")
    try:
        untrusted_xml.refuse_declarations(data)
    except untrusted_xml.RefusedXml as exc:
        raise _structure_error(str(exc)) from None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _structure_error(f"FHIR XML must be encoded in UTF-8: {exc.reason} at byte {exc.start}") from None


def _local_name(element: etree._Element, path: str) -> str:
    tag = element.tag
    if not tag.startswith(_F):
        qname = etree.QName(tag)
        where = f" in {path}" if path else ""
        raise _structure_error(
            f"Element '{qname.localname}'{where} is in namespace '{qname.namespace or ''}', not '{FHIR_NS}'",
            path or None,
        )
    return tag[len(_F) :]


def _text_error(path: str) -> FhirError:
    return _structure_error(f"Text content is not allowed in {path} (values go in @value)", path)


def _children(element: etree._Element, path: str):
    """Element children, refusing text content (FHIR XML carries values in attributes)."""
    if element.text and not element.text.isspace():
        raise _text_error(path)
    for child in element:
        if child.tail and not child.tail.isspace():
            raise _text_error(path)
        if isinstance(child.tag, str):
            yield child


def _read_resource(element: etree._Element, path: str) -> dict:
    name = _local_name(element, path)
    info = meta.resource_info(name)
    if info is None:
        raise _structure_error(f"Unknown resource type '{name}'" + (f" in {path}" if path else ""), path or None)
    for attribute in element.attrib:
        if not attribute.startswith("{"):
            raise _structure_error(f"Unexpected attribute '{attribute}' on {name}", path or name)
    result: dict = {"resourceType": name}
    _read_elements(element, info, path or name, result)
    return result


def _read_complex(element: etree._Element, info: meta.TypeInfo, path: str) -> dict:
    result: dict = {}
    for attribute, value in element.attrib.items():
        if attribute in info.attributes:
            result[attribute] = value
        elif not attribute.startswith("{"):
            raise _structure_error(f"Unexpected attribute '{attribute}' on {path}", path)
    _read_elements(element, info, path, result)
    if not result:
        raise _structure_error(f"Element {path} is empty", path)
    return result


def _read_elements(element: etree._Element, info: meta.TypeInfo, path: str, result: dict) -> None:
    found: dict[str, list] = {}
    elements = info.elements
    in_order = True
    last = -1
    text = element.text
    if text and not text.isspace():
        raise _text_error(path)
    for child in element:
        tail = child.tail
        if tail and not tail.isspace():
            raise _text_error(path)
        tag = child.tag
        if not isinstance(tag, str):  # a comment
            continue
        if tag.startswith(_F):
            name = tag[_F_LENGTH:]
        elif tag == _XHTML_DIV:
            name = "div"
        else:
            name = _local_name(child, path)
        element_info = elements.get(name)
        if element_info is None or name in info.attributes:
            raise _structure_error(f"Unknown element '{name}' in {path}", f"{path}.{name}")
        if element_info.kind == meta.XHTML and tag != _XHTML_DIV:
            raise _structure_error(f"{path}.div must be an XHTML <div> in namespace '{XHTML_NS}'", f"{path}.div")
        values = found.get(name)
        if values is None:
            found[name] = values = [child]
            if element_info.position < last:
                in_order = False
            last = element_info.position
        elif not element_info.repeats:
            raise _structure_error(f"Element '{name}' occurs more than once in {path}", f"{path}.{name}")
        else:
            values.append(child)
    if not found:
        return
    names = found if in_order else sorted(found, key=lambda n: elements[n].position)
    groups: dict[str, str] = {}
    for name in names:  # definition order makes the JSON order
        children = found[name]
        element_info = elements[name]
        child_path = f"{path}.{name}"
        group = element_info.choice_group
        if group is not None:
            if group in groups:
                raise _structure_error(
                    f"Only one of {path}.{group}[x] is allowed, found '{groups[group]}' and '{name}'", child_path
                )
            groups[group] = name
        kind = element_info.kind
        if kind == meta.PRIMITIVE:
            if element_info.repeats:
                pairs = [
                    _read_primitive(child, element_info.json_type, f"{child_path}[{index}]")
                    for index, child in enumerate(children)
                ]
            else:
                pairs = [_read_primitive(children[0], element_info.json_type, child_path)]
            if element_info.repeats:
                # No value array when every position is null (only extensions), as in the
                # spec's own examples (Timing.event with cqf-expression).
                if any(value is not None for value, _ in pairs):
                    result[name] = [value for value, _ in pairs]
                if any(extra is not None for _, extra in pairs):
                    result["_" + name] = [extra for _, extra in pairs]
            else:
                value, extra = pairs[0]
                if value is not None:
                    result[name] = value
                if extra is not None:
                    result["_" + name] = extra
        elif kind == meta.COMPLEX:
            type_info = element_info.type_info
            if element_info.repeats:
                result[name] = [
                    _read_complex(child, type_info, f"{child_path}[{index}]") for index, child in enumerate(children)
                ]
            else:
                result[name] = _read_complex(children[0], type_info, child_path)
        elif kind == meta.RESOURCE:
            if element_info.repeats:
                result[name] = [
                    _read_wrapped_resource(child, f"{child_path}[{index}]") for index, child in enumerate(children)
                ]
            else:
                result[name] = _read_wrapped_resource(children[0], child_path)
        else:  # XHTML
            result[name] = div_to_string(children[0])


def _read_primitive(element: etree._Element, json_type: str, path: str):
    """(value or None, {"id", "extension"} companion or None) for one primitive element."""
    value = None
    extra: dict = {}
    for attribute, text in element.attrib.items():
        if attribute == "value":
            value = _primitive_value(text, json_type, path)
        elif attribute == "id":
            extra["id"] = text
        elif not attribute.startswith("{"):
            raise _structure_error(f"Unexpected attribute '{attribute}' on {path}", path)
    extensions = []
    extension_info = None
    children = _children(element, path) if len(element) or element.text else ()
    for child in children:
        name = _local_name(child, path)
        if name != "extension":
            raise _structure_error(
                f"Unknown element '{name}' in {path} (a primitive holds only extensions)", f"{path}.{name}"
            )
        if extension_info is None:
            extension_info = meta.type_info(_extension_class())
        extensions.append(_read_complex(child, extension_info, f"{path}.extension"))
    if extensions:
        extra["extension"] = extensions
    if value is None and not extensions:
        raise _structure_error(f"Element {path} has neither a value nor extensions", path)
    return value, (extra or None)


def _primitive_value(text: str, json_type: str, path: str):
    if json_type == meta.STRING:
        if text == "":
            raise _structure_error(f"Empty value in {path} (omit the element instead)", path)
        return text
    if json_type == meta.BOOLEAN:
        if text == "true":
            return True
        if text == "false":
            return False
        raise _structure_error(f"Invalid boolean '{text}' in {path}", path)
    if json_type == meta.INTEGER:
        if _INTEGER_RE.match(text):
            return int(text)
        raise _structure_error(f"Invalid integer '{text}' in {path}", path)
    if _DECIMAL_RE.match(text):
        return Decimal(text)
    raise _structure_error(f"Invalid decimal '{text}' in {path}", path)


def _read_wrapped_resource(element: etree._Element, path: str) -> dict:
    if element.attrib:
        raise _structure_error(f"Unexpected attribute on {path} (it only wraps a resource)", path)
    inner = list(_children(element, path))
    if len(inner) != 1:
        raise _structure_error(f"{path} must hold exactly one resource, found {len(inner)} elements", path)
    return _read_resource(inner[0], path)


def _extension_class():
    from fhir.resources.R4B.extension import Extension

    return Extension


# ---------------------------------------------------------------------------- JSON -> XML


def resource_to_xml(resource: dict, pretty: bool = False) -> bytes:
    """Serialise a FHIR JSON resource dict as FHIR XML (UTF-8, with an XML declaration)."""
    try:
        root = _write_resource(resource, "", None)
    except RecursionError:
        raise _structure_error("The resource is nested too deeply") from None
    except ValueError as exc:  # lxml refuses strings XML cannot carry (control characters)
        raise _structure_error(f"The resource cannot be written as XML: {exc}") from None
    if pretty:
        _indent(root, "\n")
    return _DECLARATION + etree.tostring(root, encoding="UTF-8")


def _indent(element: etree._Element, newline: str) -> None:
    """Indent the FHIR elements; the narrative XHTML is content and stays exactly as it is
    (lxml's pretty printer would add whitespace inside it)."""
    if len(element) == 0 or element.tag == _XHTML_DIV:
        return
    inner = newline + "  "
    element.text = inner
    for child in element:
        _indent(child, inner)
        child.tail = inner
    child.tail = newline


def _write_resource(resource, path: str, parent: etree._Element | None) -> etree._Element:
    if not isinstance(resource, dict):
        raise _structure_error(f"{path or 'The resource'} must be a JSON object", path or None)
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        raise _structure_error(f"{path or 'The resource'} has no resourceType", path or None)
    info = meta.resource_info(resource_type)
    if info is None:
        raise _structure_error(f"Unknown resource type '{resource_type}'", path or None)
    if parent is None:
        element = etree.Element(_F + resource_type, nsmap={None: FHIR_NS})
    else:
        element = etree.SubElement(parent, _F + resource_type)
    _write_elements(resource, info, resource_type, element, skip=("resourceType",))
    return element


def _write_elements(obj: dict, info: meta.TypeInfo, path: str, element: etree._Element, skip=()) -> None:
    elements = info.elements
    present: dict[str, meta.ElementInfo] = {}
    in_order = True
    last = -1
    for key in obj:
        if key in skip or key == "fhir_comments":
            continue
        name = key[1:] if key[0] == "_" else key
        element_info = elements.get(name)
        if element_info is None or (
            key != name and (element_info.kind != meta.PRIMITIVE or name in info.attributes)
        ):
            raise _structure_error(f"Unknown property '{key}' in {path}", f"{path}.{key}")
        if element_info.position < last:
            in_order = False
        last = element_info.position
        present[name] = element_info
    names = present if in_order else sorted(present, key=lambda n: present[n].position)
    attributes = info.attributes
    for name in names:  # XML order is the definition order, whatever the JSON key order
        element_info = present[name]
        value = obj.get(name)
        if name in attributes:
            if value is not None:
                if not isinstance(value, str):
                    raise _structure_error(f"{path}.{name} must be a string", f"{path}.{name}")
                element.set(name, value)
            continue
        kind = element_info.kind
        child_path = f"{path}.{name}"
        if kind == meta.PRIMITIVE:
            extra = obj.get("_" + name)
            if value is None and extra is None:
                continue
            if element_info.repeats:
                values = _as_list(value, child_path)
                extras = _as_list(extra, "_" + child_path)
                if value is not None and extra is not None and len(values) != len(extras):
                    raise _structure_error(
                        f"{child_path} and _{name} must have the same length", child_path
                    )
                for index in range(max(len(values), len(extras))):
                    _write_primitive(
                        element,
                        name,
                        values[index] if index < len(values) else None,
                        extras[index] if index < len(extras) else None,
                        element_info.json_type,
                        f"{child_path}[{index}]",
                    )
            else:
                _write_primitive(element, name, value, extra, element_info.json_type, child_path)
        elif value is None:
            continue
        elif kind == meta.COMPLEX:
            type_info = element_info.type_info
            if element_info.repeats:
                for index, item in enumerate(_as_list(value, child_path)):
                    _write_complex(element, name, item, type_info, f"{child_path}[{index}]")
            else:
                _write_complex(element, name, value, type_info, child_path)
        elif kind == meta.RESOURCE:
            items = _as_list(value, child_path) if element_info.repeats else [value]
            for index, item in enumerate(items):
                wrapper = etree.SubElement(element, _F + name)
                _write_resource(item, f"{child_path}[{index}]" if element_info.repeats else child_path, wrapper)
        else:  # XHTML
            if not isinstance(value, str):
                raise _structure_error(f"{child_path} must be a string of XHTML", child_path)
            try:
                element.append(string_to_div(value, _parser()))
            except (etree.XMLSyntaxError, ValueError) as exc:
                raise _structure_error(f"{child_path} is not valid XHTML: {exc}", child_path) from None


def _as_list(value, path: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _structure_error(f"{path} must be an array", path)
    return value


def _write_complex(parent: etree._Element, name: str, value, info: meta.TypeInfo, path: str) -> None:
    if not isinstance(value, dict):
        raise _structure_error(f"{path} must be a JSON object", path)
    element = etree.SubElement(parent, _F + name)
    _write_elements(value, info, path, element)


def _write_primitive(parent: etree._Element, name: str, value, extra, json_type: str, path: str) -> None:
    if value is None and extra is None:
        return
    element = etree.SubElement(parent, _F + name)
    if extra is not None:
        if not isinstance(extra, dict):
            raise _structure_error(f"_{path} must be a JSON object", path)
        for key in extra:
            if key not in ("id", "extension", "fhir_comments"):
                raise _structure_error(f"Unknown property '{key}' in _{path}", path)
        element_id = extra.get("id")
        if element_id is not None:
            element.set("id", element_id)
    if value is not None:
        text = _primitive_text(value, json_type, path)
        try:
            element.set("value", text)
        except ValueError:
            raise _structure_error(f"{path} holds characters that XML cannot carry", path) from None
    if extra is not None and extra.get("extension") is not None:
        extension_info = meta.type_info(_extension_class())
        for index, item in enumerate(_as_list(extra["extension"], path)):
            _write_complex(element, "extension", item, extension_info, f"{path}.extension[{index}]")


def _primitive_text(value, json_type: str, path: str) -> str:
    if json_type == meta.STRING:
        if isinstance(value, str):
            return value
    elif json_type == meta.BOOLEAN:
        if isinstance(value, bool):
            return "true" if value else "false"
    elif isinstance(value, bool):
        pass
    elif json_type == meta.INTEGER:
        if isinstance(value, int):
            return str(value)
        if isinstance(value, Decimal) and value == value.to_integral_value() and "." not in str(value):
            return str(int(value))
    elif isinstance(value, (int, Decimal)):
        return str(value)
    elif isinstance(value, float):
        return repr(value)
    raise _structure_error(f"{path} has a value of the wrong JSON type ({type(value).__name__})", path)
