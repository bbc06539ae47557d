"""Convert and commit: legacy message → transaction Bundle → ``Repository.process_bundle``.

The commit goes through the same validation and rules as a REST transaction. A processed
HL7 v2 message is remembered as a ``Basic`` resource (id derived from sender and MSH-10)
written inside the same transaction, so "applied" and "remembered" are one atomic fact that
survives restarts; a resend with the same MSH-10 from the same sender is acknowledged
without being applied again. Within one process a lock serialises check-and-commit; two
processes racing on one resend would at worst apply conditional updates twice, which
converge on the same resources.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field

from fhir_server.errors import FhirError
from fhir_server.mapping.convert import Converter, V2Conversion
from fhir_server.mapping.errors import MappingError
from fhir_server.mapping.hl7v2.ack import build_ack
from fhir_server.mapping.hl7v2.parser import Message

log = logging.getLogger("fhir_server.mapping")

MESSAGE_SYSTEM = "https://fhir.referral.cn/ig/sid/hl7v2/message"
V2_0076 = "http://terminology.hl7.org/CodeSystem/v2-0076"


def message_record_id(sender: str, control_id: str) -> str:
    """A FHIR id for (sender, MSH-10): stable, 64 characters at most, only id-safe characters."""
    return "hl7v2-" + hashlib.sha256(f"{sender}\x1f{control_id}".encode("utf-8")).hexdigest()[:40]


def message_record(conversion: V2Conversion) -> dict:
    return {
        "resourceType": "Basic",
        "id": message_record_id(conversion.sender, conversion.control_id),
        "identifier": [{"system": MESSAGE_SYSTEM, "value": f"{conversion.sender}|{conversion.control_id}"}],
        "code": {
            "coding": [{"system": V2_0076, "code": conversion.message_type.split("^")[0]}],
            "text": f"HL7 v2 {conversion.message_type} processed",
        },
    }


@dataclass
class IngestOutcome:
    #: AA, AE or AR
    code: str
    ack: str
    codec: str = "utf-8"
    text: str = ""
    response: dict | None = None
    bundle: dict | None = None
    warnings: list[str] = field(default_factory=list)
    duplicate: bool = False
    error: MappingError | FhirError | None = None

    @property
    def ack_bytes(self) -> bytes:
        return self.ack.encode(self.codec, errors="replace")


def _peek_control_id(raw: bytes) -> str:
    """MSH-10 of a message that could not be parsed, when its first line still shows one."""
    head = raw.lstrip()[:1024].replace(b"\n", b"\r").split(b"\r", 1)[0]
    if not head.startswith(b"MSH") or len(head) < 4:
        return ""
    fields = head.split(head[3:4])
    value = fields[9] if len(fields) > 9 else b""
    text = value.decode("latin-1")
    return text if text.isprintable() and len(text) <= 64 else ""


def _fhir_error_text(exc: FhirError) -> str:
    texts = [i.get("diagnostics", "") for i in exc.issues if i.get("severity") in ("error", "fatal")] or [str(exc)]
    return "; ".join(t for t in texts if t)[:500]


class Ingestor:
    def __init__(self, repository, converter: Converter | None = None):
        self.repository = repository
        self.converter = converter or Converter()
        self._lock = threading.Lock()

    def already_processed(self, sender: str, control_id: str) -> bool:
        try:
            self.repository.read("Basic", message_record_id(sender, control_id))
        except FhirError as exc:
            if exc.status in (404, 410):
                return False
            raise
        return True

    def ingest_v2(self, raw: bytes, charset: str | None = None) -> IngestOutcome:
        """Map and commit one HL7 v2 message; always returns an ACK (never raises for bad input)."""
        offset = self.converter.config.default_offset
        message: Message | None = None
        try:
            message, decode_warnings = self.converter.parse_v2(raw, charset)
            conversion = self.converter.map_v2(message, decode_warnings)
        except MappingError as exc:
            code = "AR" if exc.reject else "AE"
            log.warning("HL7 v2 message rejected (%s %s): %s", code, exc.code, exc)
            ack = build_ack(message, code, str(exc), exc.code, exc.location, default_offset=offset,
                            original_control_id="" if message else _peek_control_id(raw))
            return IngestOutcome(code, ack, message.codec if message else "utf-8", str(exc), error=exc)
        except Exception as exc:  # a bug must not take the listener down; the sender gets AE
            log.exception("mapping failed")
            text = f"internal error while mapping: {type(exc).__name__}"
            return IngestOutcome("AE", build_ack(message, "AE", text, "207", default_offset=offset),
                                 message.codec if message else "utf-8", text)
        codec = conversion.codec
        with self._lock:
            try:
                if self.already_processed(conversion.sender, conversion.control_id):
                    text = f"message {conversion.control_id} from {conversion.sender} was already processed; not applied again"
                    return IngestOutcome("AA", build_ack(message, "AA", text, default_offset=offset), codec, text,
                                         duplicate=True)
                bundle = conversion.bundle
                self.add_intermediate_steps(conversion)
                bundle["entry"].append({
                    "fullUrl": f"Basic/{message_record_id(conversion.sender, conversion.control_id)}",
                    "resource": message_record(conversion),
                    "request": {"method": "PUT", "url": f"Basic/{message_record_id(conversion.sender, conversion.control_id)}"},
                })
                response = self.repository.process_bundle(bundle)
            except FhirError as exc:
                text = _fhir_error_text(exc)
                log.warning("HL7 v2 message %s not committed: %s", conversion.control_id, text)
                # 404: a referral number (or other key) the platform does not know
                error_code = "204" if exc.status == 404 else "207"
                return IngestOutcome("AE", build_ack(message, "AE", text, error_code, default_offset=offset), codec, text,
                                     bundle=conversion.bundle, warnings=conversion.warnings, error=exc)
            except Exception as exc:
                log.exception("commit failed")
                text = f"internal error while committing: {type(exc).__name__}"
                return IngestOutcome("AE", build_ack(message, "AE", text, "207", default_offset=offset), codec, text)
        return IngestOutcome("AA", build_ack(message, "AA", "", default_offset=offset, warnings=conversion.warnings), codec,
                             response=response, bundle=conversion.bundle, warnings=conversion.warnings)

    def add_intermediate_steps(self, conversion) -> None:
        """PATCH entries whose spec declares ``statusVia``: when the stored resource is in neither the
        wanted nor the intermediate status, a PATCH to the intermediate step goes first (same transaction)."""
        from fhir_server.mapping.engine import json_patch, patch_entry

        entries = conversion.bundle["entry"]
        for instance in conversion.instances:
            wanted = instance.resource.get("status")
            step = (instance.status_via or {}).get(wanted)
            if not step:
                continue
            resource_type, _, query = instance.request["url"].partition("?")
            with self.repository.store.session() as session:
                matches = self.repository.find(session, resource_type, query)
            if len(matches) != 1:
                continue  # the transaction reports the missing or ambiguous target
            from fhir_server.formats.json import loads

            current = loads(matches[0].body).get("status")
            if current in (wanted, step["status"]):
                continue
            position = next(i for i, e in enumerate(entries) if e["fullUrl"] == instance.full_url)
            ops = json_patch({"resourceType": resource_type, **step})
            entries.insert(position, patch_entry(instance.full_url + "-step", instance.request["url"], ops))

    def ingest_xml(self, raw: bytes) -> dict:
        """Map and commit an XML document; raises MappingError/FhirError (nothing stored on error)."""
        result = self.converter.convert_xml(raw)
        return self.repository.process_bundle(result.bundle)
