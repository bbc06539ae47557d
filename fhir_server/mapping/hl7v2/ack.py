"""General acknowledgements (ACK) for inbound HL7 v2 messages: MSA, and ERR saying what was wrong.

ERR carries both the v2.3/2.4 form (ERR-1 error code and location) and the v2.5+ form (ERR-2
location, ERR-3 HL7 error code, ERR-4 severity, ERR-8 user message), so receivers of either
generation read it. The ACK echoes the inbound separators, version and character set.
"""

from __future__ import annotations

import itertools
import re
import time
from datetime import datetime, timedelta, timezone

from fhir_server.mapping.errors import ERROR_TEXT
from fhir_server.mapping.hl7v2.encoding import CODEC_MSH18
from fhir_server.mapping.hl7v2.parser import DEFAULT_SEPARATORS, Message, Separators, escape

_LOCATION = re.compile(r"([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?(?:-(\d+))?(?:\.(\d+))?")
_counter = itertools.count(1)


def timestamp(offset: str) -> str:
    """Now as an HL7 DTM with the given offset."""
    sign = 1 if offset[0] == "+" else -1
    delta = timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
    return datetime.now(timezone(sign * delta)).strftime("%Y%m%d%H%M%S") + offset.replace(":", "")


def control_id(prefix: str = "ACK") -> str:
    """A new MSH-10: milliseconds plus a per-process counter."""
    return f"{prefix}{int(time.time() * 1000)}{next(_counter) % 100000:05d}"


def build_ack(
    message: Message | None,
    code: str,
    text: str = "",
    error_code: str = "",
    location: str = "",
    severity: str = "E",
    default_offset: str = "+08:00",
    warnings: list[str] | None = None,
    original_control_id: str = "",
) -> str:
    """The ACK text (segments joined by CR). ``code`` is AA, AE or AR.

    Without a parsed message (it could not be read), ``original_control_id`` — MSH-10 as far as it
    could be made out — still lets the sender match the rejection to what it sent.
    """
    seps: Separators = message.separators if message is not None else DEFAULT_SEPARATORS
    f, c = seps.field, seps.component
    esc = lambda value: escape(value, seps)  # noqa: E731
    if message is not None:
        msh = message.msh
        sending_app, sending_fac = msh.field(5), msh.field(6)
        receiving_app, receiving_fac = msh.field(3), msh.field(4)
        trigger = msh.get(9, 2)
        original_id = msh.field(10)
        version = msh.get(12) or "2.5"
        processing = msh.field(11) or "P"
        charset = msh.field(18) or CODEC_MSH18.get(message.codec, "")
    else:
        sending_app = sending_fac = receiving_app = receiving_fac = trigger = ""
        original_id = escape(original_control_id, seps)
        version, processing, charset = "2.5", "P", ""
    msh_fields = [
        "MSH", seps.encoding_characters, sending_app, sending_fac, receiving_app, receiving_fac,
        timestamp(default_offset), "", f"ACK{c}{trigger}{c}ACK" if trigger else "ACK", control_id(), processing, version,
        "", "", "", "", "", charset,
    ]
    while msh_fields and msh_fields[-1] == "":
        msh_fields.pop()
    segments = [f.join(msh_fields)]
    segments.append(f.join(["MSA", code, original_id, esc(text[:80])]).rstrip(f))
    if code != "AA" or error_code:
        segments.append(_err(seps, error_code or "207", location, severity, text, esc))
    for warning in (warnings or [])[:20]:
        segments.append(_err(seps, "", "", "W", warning, esc))
    return "\r".join(segments) + "\r"


def _err(seps: Separators, error_code: str, location: str, severity: str, text: str, esc) -> str:
    f, c, s = seps.field, seps.component, seps.subcomponent
    segment_id = position = field_no = component = ""
    match = _LOCATION.match(location or "")
    if match:
        segment_id, occurrence, field_no, component = match.groups()
        position = occurrence or "1"
        field_no, component = field_no or "", component or ""
    code_text = ERROR_TEXT.get(error_code, "")
    eld = c.join([segment_id, position, field_no, s.join([error_code, code_text, "HL70357"]) if error_code else ""]).rstrip(c)
    erl = c.join([segment_id, position, field_no, "", component]).rstrip(c)
    hl7_code = c.join([error_code, code_text, "HL70357"]) if error_code else c.join(["0", "Message accepted", "HL70357"])
    fields = ["ERR", eld, erl, hl7_code, severity, "", "", "", esc(text[:500])]
    return f.join(fields)
