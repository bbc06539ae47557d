"""HL7 v2: character-set handling, parsing, writing and acknowledgements."""

from fhir_server.mapping.hl7v2.encoding import decode_message
from fhir_server.mapping.hl7v2.parser import Message, Segment, parse_message, V2ParseError

__all__ = ["decode_message", "parse_message", "Message", "Segment", "V2ParseError"]
