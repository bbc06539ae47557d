"""Legacy message or document in, MappingResult (transaction Bundle + warnings) out.

Detects HL7 v2 (starts with ``MSH``) or XML (starts with ``<``), decodes HL7 v2 with the
sending endpoint's charset (cross-checked with MSH-18), picks the spec by message type —
a sender's dialect first — and runs the engine. Nothing here touches the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fhir_server.mapping.engine import MappingResult, run_spec
from fhir_server.mapping.errors import (
    UNSUPPORTED_EVENT_CODE,
    UNSUPPORTED_MESSAGE_TYPE,
    UNSUPPORTED_PROCESSING_ID,
    UNSUPPORTED_VERSION_ID,
    MappingError,
)
from fhir_server.mapping.hl7v2.encoding import CharsetError, decode_message
from fhir_server.mapping.hl7v2.parser import Message, V2ParseError, parse_message
from fhir_server.mapping.hl7v2.source import V2Source
from fhir_server.mapping.specs import MappingLibrary, load_library

SUPPORTED_VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2")


@dataclass
class MappingConfig:
    """Mapping settings, normally from ``Settings.extra['mapping']``."""

    default_offset: str = "+08:00"
    #: charset when neither the endpoint nor MSH-18 says (after a strict UTF-8 attempt)
    default_charset: str = "gb18030"
    #: sending facility (MSH-4.1) or application (MSH-3.1) → charset
    sender_charsets: dict[str, str] = field(default_factory=dict)
    mappings_dir: str | None = None

    @classmethod
    def from_settings(cls, settings) -> "MappingConfig":
        extra = (getattr(settings, "extra", None) or {}).get("mapping", {})
        return cls(
            default_offset=extra.get("default_offset", "+08:00"),
            default_charset=extra.get("default_charset", "gb18030"),
            sender_charsets=dict(extra.get("sender_charsets", {})),
            mappings_dir=extra.get("mappings_dir"),
        )


@dataclass
class V2Conversion(MappingResult):
    message: Message | None = None
    codec: str = ""


def sender_of(message: Message) -> str:
    """Who sent it, for duplicate detection: MSH-3 application ^ MSH-4 facility."""
    msh = message.msh
    return f"{msh.get(3)}^{msh.get(4)}"


def _peek_sender(raw: bytes) -> tuple[str, str]:
    """MSH-3.1 and MSH-4.1 read from raw bytes, only to choose a charset (codes are ASCII in practice)."""
    head = raw.lstrip()[:512].split(b"\r", 1)[0].split(b"\n", 1)[0]
    if len(head) < 8 or not head.startswith(b"MSH"):
        return "", ""
    parts = head.split(head[3:4])
    component = head[4:5]
    app = parts[2].split(component)[0] if len(parts) > 2 else b""
    facility = parts[3].split(component)[0] if len(parts) > 3 else b""
    return app.decode("latin-1"), facility.decode("latin-1")


class Converter:
    def __init__(self, config: MappingConfig | None = None, library: MappingLibrary | None = None):
        self.config = config or MappingConfig()
        self.library = library or load_library(self.config.mappings_dir)

    def endpoint_charset(self, raw: bytes, charset: str | None) -> str | None:
        if charset:
            return charset
        if self.config.sender_charsets:
            app, facility = _peek_sender(raw)
            return self.config.sender_charsets.get(facility) or self.config.sender_charsets.get(app)
        return None

    def parse_v2(self, raw: bytes, charset: str | None = None) -> tuple[Message, list[str]]:
        try:
            decoded = decode_message(raw, self.endpoint_charset(raw, charset), self.config.default_charset)
        except CharsetError as exc:
            raise MappingError(str(exc), "102", "MSH-18", reject=True) from None
        try:
            message = parse_message(decoded.text, decoded.codec)
        except V2ParseError as exc:
            raise MappingError(str(exc), "102" if exc.location.startswith("MSH") else "100", exc.location, reject=True) from None
        return message, decoded.warnings

    def convert_v2(self, raw: bytes, charset: str | None = None) -> V2Conversion:
        message, warnings = self.parse_v2(raw, charset)
        return self.map_v2(message, warnings)

    def map_v2(self, message: Message, warnings: list[str] | None = None) -> V2Conversion:
        code, trigger, _ = message.message_type
        version = message.version
        if version and version not in SUPPORTED_VERSIONS:
            raise MappingError(f"MSH-12 version {version!r} is not supported (2.3 to 2.8)", UNSUPPORTED_VERSION_ID, "MSH-12", reject=True)
        processing = message.msh.get(11)
        if processing and processing not in ("P", "T", "D"):
            raise MappingError(f"MSH-11 processing id {processing!r} is not P, T or D", UNSUPPORTED_PROCESSING_ID, "MSH-11", reject=True)
        facility = message.msh.get(4)
        spec = self.library.spec_for(code, trigger, facility)
        if spec is None:
            known = any(t.split("^")[0] == code for t in self.library.by_message_type)
            raise MappingError(
                f"message type {code}^{trigger} is not supported (mapped: {', '.join(sorted(self.library.by_message_type))})",
                UNSUPPORTED_EVENT_CODE if known else UNSUPPORTED_MESSAGE_TYPE,
                "MSH-9",
                reject=True,
            )
        missing = [name for name in spec.required_segments if not message.all(name)]
        if missing:
            raise MappingError(f"required segment {missing[0]} is missing from {code}^{trigger}", "100", missing[0])
        sender = sender_of(message)
        bundle, run_warnings, instances = run_spec(spec, V2Source(message), self.config.default_offset, seed=f"{sender}|{message.control_id}")
        return V2Conversion(
            bundle=bundle,
            warnings=list(warnings or []) + run_warnings,
            spec_id=spec.id,
            instances=instances,
            control_id=message.control_id,
            sender=sender,
            message_type=f"{code}^{trigger}",
            message=message,
            codec=message.codec,
        )

    def convert_xml(self, raw: bytes) -> MappingResult:
        from fhir_server.mapping.xml import convert_document

        return convert_document(raw, self.library, self.config.default_offset)

    def convert(self, raw: bytes, charset: str | None = None) -> MappingResult:
        head = raw.lstrip(b"\xef\xbb\xbf \t\r\n\x0b")[:5]
        if head.startswith(b"MSH"):
            return self.convert_v2(raw, charset)
        if head.startswith(b"<"):
            return self.convert_xml(raw)
        raise MappingError("input is neither an HL7 v2 message (MSH…) nor an XML document (<…)", "100", "", reject=True)
