"""Character sets of HL7 v2 messages: decode the whole message before anything splits it.

GBK/GB18030 second bytes may be 0x7C ``|``, 0x5E ``^``, 0x7E ``~`` or 0x5C ``\\``, so a
message is decoded as a whole first and split as text. The charset comes from the sending
endpoint's configuration when it has one, and is cross-checked with MSH-18; without
configuration, MSH-18 decides, and without MSH-18 strict UTF-8 is tried before the
configurable default (GB18030, a superset of GBK and GB2312).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

#: MSH-18 values (HL7 table 0211 plus spellings seen in the field) → Python codec
MSH18_CODECS: dict[str, str] = {
    "ASCII": "ascii",
    "US-ASCII": "ascii",
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",
    "UTF-8": "utf-8",
    "UTF8": "utf-8",
    "8859/1": "latin-1",
    "GB 18030-2000": "gb18030",
    "GB18030": "gb18030",
    "GB 18030": "gb18030",
    "GBK": "gb18030",
    "GB2312": "gb18030",
    "GB 2312": "gb18030",
    "CNS 11643-1992": "gb18030",
}

#: canonical MSH-18 value written for a codec (outbound messages and ACKs)
CODEC_MSH18 = {"ascii": "ASCII", "utf-8": "UNICODE UTF-8", "gb18030": "GB 18030-2000", "latin-1": "8859/1"}


class CharsetError(ValueError):
    """The message cannot be decoded with the character set it must be read in."""


def codec_name(charset: str) -> str:
    """Normalise an MSH-18 value or a codec alias to a Python codec name (GBK → gb18030)."""
    key = charset.strip().upper()
    if key in MSH18_CODECS:
        return MSH18_CODECS[key]
    try:
        name = codecs.lookup(charset.strip()).name
    except LookupError:
        raise CharsetError(f"unknown character set {charset!r}") from None
    return {"gbk": "gb18030", "gb2312": "gb18030", "us-ascii": "ascii", "iso8859-1": "latin-1"}.get(name, name)


def _compatible(declared: str, used: str, raw: bytes) -> bool:
    if declared == used:
        return True
    # ASCII content reads the same in every supported charset
    return declared == "ascii" and raw.isascii() or used == "ascii"


def _msh18(text: str) -> str:
    """MSH-18 of decoded text, without a full parse (the parser needs the text first)."""
    if not text.startswith("MSH") or len(text) < 4:
        return ""
    end = len(text)
    for terminator in ("\r", "\n"):
        position = text.find(terminator)
        if position != -1:
            end = min(end, position)
    fields = text[:end].split(text[3])
    # fields[0] is "MSH", fields[1] the encoding characters (MSH-2), so MSH-n is fields[n-1]
    return fields[17].split(text[4] if len(text) > 4 else "^")[0].strip() if len(fields) > 17 else ""


@dataclass
class Decoded:
    text: str
    codec: str
    #: MSH-18 as written in the message ("" when absent)
    declared: str = ""
    warnings: list[str] = field(default_factory=list)


def decode_message(raw: bytes, endpoint_charset: str | None = None, default_charset: str = "gb18030") -> Decoded:
    """Decode a whole framed message; raise CharsetError when it cannot be read."""
    warnings: list[str] = []
    if endpoint_charset:
        used = codec_name(endpoint_charset)
        try:
            text = raw.decode(used)
        except UnicodeDecodeError as exc:
            raise CharsetError(f"message is not valid {used} (the endpoint's character set): {exc.reason} at byte {exc.start}") from None
        declared = _msh18(text)
        if declared:
            try:
                declared_codec = codec_name(declared)
            except CharsetError:
                warnings.append(f"MSH-18 {declared!r} is not a known character set; read as {used} per endpoint configuration")
            else:
                if not _compatible(declared_codec, used, raw):
                    warnings.append(f"MSH-18 says {declared!r} but the endpoint is configured for {used}; read as {used}")
        return Decoded(text, used, declared, warnings)

    try:
        text, used = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        used = codec_name(default_charset)
        try:
            text = raw.decode(used)
        except UnicodeDecodeError as exc:
            raise CharsetError(f"message is neither UTF-8 nor {used}: {exc.reason} at byte {exc.start}") from None
    declared = _msh18(text)
    if declared:
        declared_codec = codec_name(declared)  # unknown MSH-18 without endpoint configuration: reject
        if not _compatible(declared_codec, used, raw):
            try:
                text = raw.decode(declared_codec)
            except UnicodeDecodeError as exc:
                raise CharsetError(f"message is not valid {declared_codec} as MSH-18 {declared!r} declares: {exc.reason} at byte {exc.start}") from None
            used = declared_codec
    elif used != "utf-8":
        # strict UTF-8 failed, so the bytes are read in the default charset: say so
        warnings.append(f"MSH-18 is empty; non-ASCII content read as {used}")
    return Decoded(text, used, declared, warnings)

