"""FHIR → HL7 v2 for legacy receivers: REF^I12 from a referral, RRI^I12 from a Task status change.

Reverse specs (``mappings/reverse/*.yaml``) list the segments to write and, per field, a path
into the resources handed in (``ServiceRequest.subject.resolve().name``), a data type writer and
optionally a ConceptMap read backwards. References are followed with ``resolve()`` through a
resolver the caller supplies (the repository, or the entries of a Bundle). ``send`` delivers
the message with the MLLP client (reconnects and retries) and reads the receiver's ACK.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from fhir_server.mapping import transforms
from fhir_server.mapping.errors import MappingError
from fhir_server.mapping.hl7v2.ack import control_id as new_control_id, timestamp
from fhir_server.mapping.hl7v2.encoding import CODEC_MSH18, codec_name
from fhir_server.mapping.hl7v2.parser import DEFAULT_SEPARATORS, escape, parse_message
from fhir_server.mapping.specs import MappingLibrary, Spec

Resolver = Callable[[str], "dict | None"]

_STEP = re.compile(r"([A-Za-z_$][A-Za-z0-9_]*)(?:\[(\d+)\])?(?:\((.*)\))?\Z")
_WHERE = re.compile(r"(\w+)\s*=\s*'([^']*)'\Z")
USE_CODES = {"home": "H", "work": "O", "temp": "C", "billing": "BI"}
TELECOM_USE = {"home": "PRN", "work": "WPN", "mobile": "PRS", "temp": "VHN"}
TELECOM_EQUIPMENT = {"phone": "PH", "fax": "FX", "email": "Internet", "pager": "BP"}


def _split_path(path: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in path:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "." and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


class PathReader:
    """A small FHIRPath subset: steps, [n], resolve(), where(key='value'), first()."""

    def __init__(self, roots: dict[str, Any], resolve: Resolver):
        self.roots = roots
        self.resolve = resolve

    def values(self, path: str, this: Any = None) -> list:
        steps = _split_path(path)
        head = steps[0]
        if head == "$this":
            current = [this] if this is not None else []
        elif head in self.roots:
            root = self.roots[head]
            current = [root] if root is not None else []
        else:
            raise MappingError(f"reverse path {path!r} starts with neither a root ({', '.join(self.roots)}) nor $this")
        for step in steps[1:]:
            match = _STEP.match(step)
            if not match:
                raise MappingError(f"reverse path {path!r}: cannot read step {step!r}")
            name, index, argument = match.groups()
            if name == "resolve" and argument == "":
                current = [r for r in (self.resolve(v.get("reference", "")) for v in current if isinstance(v, dict)) if r]
                continue
            if name == "first" and argument == "":
                current = current[:1]
                continue
            if name == "where" and argument is not None:
                condition = _WHERE.match(argument.strip())
                if not condition:
                    raise MappingError(f"reverse path {path!r}: where() takes key='value'")
                key, value = condition.groups()
                current = [v for v in current if isinstance(v, dict) and str(v.get(key)) == value]
                continue
            out = []
            for item in current:
                value = item.get(name) if isinstance(item, dict) else None
                if value is None:
                    continue
                out.extend(value if isinstance(value, list) else [value])
            current = out
            if index is not None:
                position = int(index)
                current = current[position : position + 1]
        return current


class ReverseWriter:
    def __init__(self, library: MappingLibrary, sending_application: str = "REFPLAT", sending_facility: str = "PLATFORM"):
        self.library = library
        self.sending_application = sending_application
        self.sending_facility = sending_facility
        self._cm = library.conceptmaps

    def spec(self, spec_id: str) -> Spec:
        spec = self.library.reverse.get(spec_id)
        if spec is None:
            raise MappingError(f"no reverse spec {spec_id!r} (have: {', '.join(sorted(self.library.reverse))})")
        return spec

    def write(self, spec_id: str, roots: dict[str, Any], resolve: Resolver, receiver: tuple[str, str] = ("", ""),
              control_id: str | None = None, charset: str = "UNICODE UTF-8", default_offset: str = "+08:00") -> str:
        """The message text (segments joined by CR)."""
        spec = self.spec(spec_id)
        message = spec.raw["message"]
        reader = PathReader(roots, resolve)
        seps = DEFAULT_SEPARATORS
        msh = ["MSH", seps.encoding_characters, self.sending_application, self.sending_facility, receiver[0], receiver[1],
               timestamp(default_offset), "", message["type"], control_id or new_control_id("OUT"), "P", message.get("version", "2.5"),
               "", "", "AL", "NE", "CHN", CODEC_MSH18.get(codec_name(charset), charset)]
        segments = ["|".join(msh)]
        for definition in spec.segments:
            if "when" in definition and not [v for v in reader.values(definition["when"]) if v not in (None, "", [])]:
                continue
            items = reader.values(definition["from"]) if "from" in definition else [None]
            for number, item in enumerate(items, 1):
                fields: dict[int, str] = {}
                for key, value in definition["fields"].items():
                    text = self.field(value, reader, item, number)
                    if text:
                        fields[int(key)] = text
                if not fields:
                    continue
                last = max(fields)
                segments.append("|".join([definition["segment"]] + [fields.get(i, "") for i in range(1, last + 1)]))
        return "\r".join(segments) + "\r"

    def field(self, value, reader: PathReader, item, number: int) -> str:
        if isinstance(value, str):
            value = {"path": value} if "." in value or value == "$this" else {"value": value}
        if "value" in value:
            return str(number) if value["value"] == "{setId}" else value["value"]
        kind = value.get("type", "string")
        found = [v for v in reader.values(value["path"], item) if v not in (None, "")]
        if not value.get("repeat"):
            found = found[:1]
        texts = [self.format(kind, v, value.get("conceptMap")) for v in found]
        return "~".join(t for t in texts if t)

    def _system_code(self, system: str, conceptmap: str) -> str:
        index = self._cm.get(conceptmap)
        return (index.reverse(system) or "") if index else ""

    def format(self, kind: str, value: Any, conceptmap: str | None) -> str:
        e = escape
        if kind in ("string", "code"):
            text = str(value)
            if conceptmap:
                index = self._cm.get(conceptmap)
                if index is None:
                    raise MappingError(f"unknown ConceptMap {conceptmap!r}")
                text = index.reverse(text) or ""
            return e(text)
        if kind in ("datetime", "date"):
            try:
                text = transforms.fhir_to_v2_datetime(str(value))
            except transforms.InvalidValue as exc:
                raise MappingError(str(exc)) from None
            return text[:8] if kind == "date" else text
        if kind in ("CX", "EI"):
            system = value.get("system", "")
            type_code = next((c.get("code") for c in (value.get("type") or {}).get("coding", [])), "") or \
                self._system_code(system, "v2-identifier-type-to-system")
            authority = self._system_code(system, "v2-assigning-authority-to-system")
            if not authority and system.rsplit("/", 2)[-2:-1] in (["mrn"], ["order"], ["visit"]):
                authority = system.rsplit("/", 1)[1]
            if kind == "EI":
                return "^".join([e(value.get("value", "")), e(authority)]).rstrip("^")
            return "^".join([e(value.get("value", "")), "", "", e(authority), e(type_code)]).rstrip("^")
        if kind == "XPN":
            if value.get("family") or value.get("given"):
                given = value.get("given") or []
                parts = [e(value.get("family", "")), e(given[0] if given else ""), e(" ".join(given[1:])),
                         e((value.get("suffix") or [""])[0]), e((value.get("prefix") or [""])[0])]
            else:
                parts = [e(value.get("text", ""))]
            return "^".join(parts).rstrip("^")
        if kind == "XAD":
            lines = value.get("line") or []
            parts = [e(lines[0] if lines else ""), e(lines[1] if len(lines) > 1 else ""), e(value.get("city", "")),
                     e(value.get("state", "")), e(value.get("postalCode", "")), e(value.get("country", "")),
                     USE_CODES.get(value.get("use", ""), ""), "", e(value.get("district", ""))]
            return "^".join(parts).rstrip("^")
        if kind == "XTN":
            return "^".join([e(value.get("value", "")), TELECOM_USE.get(value.get("use", ""), ""),
                             TELECOM_EQUIPMENT.get(value.get("system", ""), "")]).rstrip("^")
        if kind == "CWE":
            codings = value.get("coding") or []
            coding = codings[-1] if len(codings) > 1 and conceptmap is None else (codings[0] if codings else {})
            code = coding.get("code", "")
            if conceptmap:
                index = self._cm.get(conceptmap)
                code = (index.reverse(code) if index else None) or code
            system_name = self._system_code(coding.get("system", ""), "v2-coding-system-to-uri")
            return "^".join([e(code), e(coding.get("display", "") or value.get("text", "")), e(system_name)]).rstrip("^")
        if kind == "PL-facility":
            # an Organization as the facility of a location: ^^^code&name
            identifier = next((i.get("value", "") for i in value.get("identifier", []) if i.get("value")), "")
            name = value.get("name", "")
            return "^^^" + "&".join(x for x in (e(identifier), e(name)) if x) if identifier or name else ""
        raise MappingError(f"unknown reverse type {kind!r}")


def bundle_resolver(bundle: dict) -> Resolver:
    """Resolve references among the entries of a (transaction) Bundle: fullUrl or Type/id."""
    index: dict[str, dict] = {}
    for entry in bundle.get("entry", []):
        resource = entry.get("resource") or {}
        if entry.get("fullUrl"):
            index[entry["fullUrl"]] = resource
        if resource.get("id"):
            index[f"{resource.get('resourceType')}/{resource['id']}"] = resource
    return index.get


def repository_resolver(repository) -> Resolver:
    from fhir_server.errors import FhirError
    from fhir_server.formats.json import loads

    def resolve(reference: str) -> dict | None:
        parts = reference.split("/")
        if len(parts) < 2:
            return None
        try:
            return loads(repository.read(parts[-2], parts[-1]).body)
        except FhirError:
            return None

    return resolve


def send(message: str, host: str, port: int, charset: str = "utf-8", retries: int = 3, timeout: float = 10.0) -> str:
    """Deliver one message over MLLP; returns MSA-1 of the receiver's ACK (AA, AE, AR …)."""
    from fhir_server.mapping.mllp import MllpClient

    codec = codec_name(charset)
    with MllpClient(host, port, timeout=timeout, retries=retries) as client:
        reply = client.send(message.encode(codec))
    ack = parse_message(reply.decode(codec, errors="replace"), codec)
    msa = ack.first("MSA")
    if msa is None:
        raise MappingError("the receiver answered without an MSA segment")
    return msa.get(1)
