"""HTTP operations of the mapping layer: ``$convert`` (dry run) and ``$ingest`` (convert and commit).

Both take the legacy message as the raw request body (HL7 v2 as ``x-application/hl7-v2+er7``
or ``text/plain``; XML documents as ``text/xml`` or ``application/octet-stream``) or a
Parameters resource with ``message`` (valueString or valueBase64Binary); ``charset`` overrides
the character set of an HL7 v2 body. Failures answer with an OperationOutcome: 400 for a message
that cannot be read or is not supported (ACK AR), 422/409/404 for one that the mapping or the
server's rules refuse (ACK AE); nothing is stored then.
"""

from __future__ import annotations

import base64
import binascii

from fhir_server.api.operations import OperationContext, app_state, operation
from fhir_server.errors import FhirError, issue, operation_outcome
from fhir_server.mapping.convert import Converter, MappingConfig
from fhir_server.mapping.errors import MappingError
from fhir_server.mapping.ingest import Ingestor


def ingestor_for(ctx: OperationContext) -> Ingestor:
    """One Ingestor per app (its lock serialises duplicate checks); created on first use."""
    return app_state(ctx, "mapping_ingestor",
                     lambda: Ingestor(ctx.repository, Converter(MappingConfig.from_settings(ctx.settings))))


def _message(ctx: OperationContext) -> bytes:
    for parameter in ctx.parameters.get("parameter") or []:
        if parameter.get("name") != "message":
            continue
        if "valueString" in parameter:
            return parameter["valueString"].encode("utf-8")
        if "valueBase64Binary" in parameter:
            try:
                return base64.b64decode(parameter["valueBase64Binary"], validate=True)
            except (binascii.Error, ValueError):
                raise FhirError(400, "parameter 'message' is not valid base64", "invalid") from None
    if ctx.body is not None:
        raise FhirError(400, "post the legacy message itself (or a Parameters resource with 'message'), not a FHIR resource",
                        "invalid")
    if not ctx.raw_body.strip():
        raise FhirError(400, "no message: post an HL7 v2 message or an XML document as the request body", "required")
    return ctx.raw_body


def _mapping_failure(exc: MappingError, ack: str = "") -> FhirError:
    status = 400 if exc.reject else 422
    issues = [issue("error", "structure" if exc.reject else "processing", f"{exc} (HL7 error {exc.code})",
                    [exc.location] if exc.location else None)]
    if ack:
        issues.append(issue("information", "informational", ack.replace("\r", "\n").strip()))
    return FhirError(status, str(exc), issues=issues)


def _warnings_outcome(warnings: list[str]) -> dict:
    return operation_outcome([issue("warning", "informational", w) for w in warnings] or
                             [issue("information", "informational", "every field of the message was mapped")])


@operation("convert", levels=("system",), methods=("POST",), affects_state=False)
def convert(ctx: OperationContext) -> dict:
    """Map a legacy message to the transaction Bundle that ``$ingest`` would commit (nothing is stored)."""
    raw = _message(ctx)
    ingestor = ingestor_for(ctx)
    try:
        result = ingestor.converter.convert(raw, ctx.param("charset"))
    except MappingError as exc:
        raise _mapping_failure(exc) from None
    return {"resourceType": "Parameters", "parameter": [
        {"name": "return", "resource": result.bundle},
        {"name": "issues", "resource": _warnings_outcome(result.warnings)},
    ]}


@operation("ingest", levels=("system",), methods=("POST",), affects_state=True)
def ingest(ctx: OperationContext) -> dict:
    """Map and commit a legacy message through the same validation and rules as a REST transaction."""
    raw = _message(ctx)
    ingestor = ingestor_for(ctx)
    head = raw.lstrip(b"\xef\xbb\xbf \t\r\n\x0b")[:3]
    if head == b"MSH":
        outcome = ingestor.ingest_v2(raw, ctx.param("charset"))
        if outcome.code != "AA":
            if isinstance(outcome.error, FhirError):
                error = outcome.error
                error.issues.append(issue("information", "informational", outcome.ack.replace("\r", "\n").strip()))
                raise error
            if isinstance(outcome.error, MappingError):
                raise _mapping_failure(outcome.error, outcome.ack)
            raise FhirError(500, outcome.text, "exception")
        parameters = [{"name": "ack", "valueString": outcome.ack}]
        if outcome.response is not None:
            parameters.append({"name": "return", "resource": outcome.response})
        parameters.append({"name": "issues", "resource": _warnings_outcome(outcome.warnings)})
        return {"resourceType": "Parameters", "parameter": parameters}
    try:
        result = ingestor.converter.convert(raw, ctx.param("charset"))
    except MappingError as exc:
        raise _mapping_failure(exc) from None
    response = ctx.repository.process_bundle(result.bundle)
    return {"resourceType": "Parameters", "parameter": [
        {"name": "return", "resource": response},
        {"name": "issues", "resource": _warnings_outcome(result.warnings)},
    ]}
