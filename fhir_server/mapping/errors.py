"""Failures of a mapping run, with the HL7 error code (table 0357) a legacy sender understands."""

from __future__ import annotations

#: HL7 table 0357 codes used in ERR-3
SEGMENT_SEQUENCE_ERROR = "100"
REQUIRED_FIELD_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE_NOT_FOUND = "103"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNSUPPORTED_EVENT_CODE = "201"
UNSUPPORTED_PROCESSING_ID = "202"
UNSUPPORTED_VERSION_ID = "203"
UNKNOWN_KEY_IDENTIFIER = "204"
DUPLICATE_KEY = "205"
APPLICATION_INTERNAL_ERROR = "207"

ERROR_TEXT = {
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "207": "Application internal error",
}


class MappingError(Exception):
    """The message cannot be mapped.

    ``reject`` marks errors of the message as a whole (unparseable, unsupported type): ACK AR;
    otherwise the content is wrong (a missing required field, an invalid date): ACK AE.
    """

    def __init__(self, message: str, code: str = APPLICATION_INTERNAL_ERROR, location: str = "", reject: bool = False):
        super().__init__(message)
        self.code = code
        self.location = location
        self.reject = reject


class SpecError(ValueError):
    """A mapping spec or ConceptMap file is invalid; the text names the file and the JSON path."""
