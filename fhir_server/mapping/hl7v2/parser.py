"""A small HL7 v2 parser working on decoded text.

Separators come from MSH-1/MSH-2; segments end with CR, LF or CRLF. Fields are split
eagerly (one ``str.split`` per segment); repetitions, components and sub-components are
split on demand and escape sequences resolved only at the leaves, so a ``\\S\\`` never
turns into a separator. ``\\X..\\`` hex escapes are bytes in the message's charset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SEGMENT_NAME = re.compile(r"[A-Z][A-Z0-9]{2}\Z")
_LINE_BREAKS = re.compile(r"\r\n|\n|\r")


class V2ParseError(ValueError):
    """The text is not an HL7 v2 message; ``location`` is e.g. ``MSH-2`` or ``segment 3``."""

    def __init__(self, message: str, location: str = ""):
        super().__init__(message)
        self.location = location


@dataclass(frozen=True)
class Separators:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def encoding_characters(self) -> str:
        return self.component + self.repetition + self.escape + self.subcomponent


DEFAULT_SEPARATORS = Separators()


def unescape(text: str, seps: Separators, codec: str = "utf-8") -> str:
    """Resolve HL7 escape sequences in one leaf value."""
    esc = seps.escape
    if not esc or esc not in text:
        return text
    out: list[str] = []
    position = 0
    length = len(text)
    while position < length:
        start = text.find(esc, position)
        if start == -1:
            out.append(text[position:])
            break
        end = text.find(esc, start + 1)
        if end == -1:  # a lone escape character: keep it as written
            out.append(text[position:])
            break
        out.append(text[position:start])
        body = text[start + 1 : end]
        position = end + 1
        if body == "F":
            out.append(seps.field)
        elif body == "S":
            out.append(seps.component)
        elif body == "T":
            out.append(seps.subcomponent)
        elif body == "R":
            out.append(seps.repetition)
        elif body == "E":
            out.append(esc)
        elif body in ("H", "N"):
            continue  # highlighting on/off: no meaning in FHIR text
        elif body[:1] == "X" and len(body) > 1:
            try:
                out.append(bytes.fromhex(body[1:]).decode(codec))
            except ValueError:
                out.append(esc + body + esc)
        elif body == ".br":
            out.append("\n")
        elif body[:1] in ("C", "M", "Z", "."):
            continue  # charset switches, locally defined and formatting escapes: tolerated, dropped
        else:
            out.append(esc + body + esc)
    return "".join(out)


def escape(text: str, seps: Separators = DEFAULT_SEPARATORS) -> str:
    """Escape a leaf value for writing."""
    esc = seps.escape
    if not any(c in text for c in (seps.field, seps.component, seps.repetition, esc, seps.subcomponent, "\r", "\n")):
        return text
    out = []
    for char in text:
        if char == esc:
            out.append(esc + "E" + esc)
        elif char == seps.field:
            out.append(esc + "F" + esc)
        elif char == seps.component:
            out.append(esc + "S" + esc)
        elif char == seps.subcomponent:
            out.append(esc + "T" + esc)
        elif char == seps.repetition:
            out.append(esc + "R" + esc)
        elif char == "\n":
            out.append(esc + ".br" + esc)
        elif char == "\r":
            continue
        else:
            out.append(char)
    return "".join(out)


class Repetition:
    """One repetition of a field: components, each with sub-components."""

    __slots__ = ("raw", "_message", "_components", "_seps")

    def __init__(self, raw: str, message: "Message"):
        self.raw = raw
        self._message = message
        self._seps = message.separators
        self._components: list[str] | None = None

    def components(self) -> list[str]:
        if self._components is None:
            self._components = self.raw.split(self._seps.component)
        return self._components

    def get(self, component: int = 1, subcomponent: int | None = None) -> str:
        """The unescaped value of component (1-based); sub-component 1 unless given.

        Without a sub-component the first one is returned, as a receiver that does not
        expect sub-components must read the field.
        """
        comps = self._components
        if comps is None:
            comps = self._components = self.raw.split(self._seps.component)
        if component > len(comps):
            return ""
        value = comps[component - 1]
        seps = self._seps
        if seps.subcomponent in value:
            subs = value.split(seps.subcomponent)
            index = (subcomponent or 1) - 1
            value = subs[index] if index < len(subs) else ""
        elif subcomponent and subcomponent > 1:
            return ""
        if seps.escape not in value:
            return value
        return unescape(value, seps, self._message.codec)

    def __bool__(self) -> bool:
        return bool(self.raw) and self.raw != '""'

    def __repr__(self) -> str:
        return f"Repetition({self.raw!r})"


class Segment:
    """One segment; ``fields[n]`` is field n (``fields[0]`` is the segment name)."""

    __slots__ = ("name", "fields", "index", "_message", "_reps")

    def __init__(self, name: str, fields: list[str], index: int, message: "Message"):
        self.name = name
        self.fields = fields
        self.index = index  # position in the message, 0-based
        self._message = message
        self._reps: dict[int, list[Repetition]] = {}

    def field(self, number: int) -> str:
        """Raw (escaped) field text, '' when absent."""
        return self.fields[number] if number < len(self.fields) else ""

    def repetitions(self, number: int) -> list[Repetition]:
        reps = self._reps.get(number)
        if reps is None:
            raw = self.field(number)
            if not raw:
                reps = []
            elif self.name == "MSH" and number <= 2:
                # MSH-1 and MSH-2 are the delimiters themselves: one value, never split
                rep = Repetition(raw, self._message)
                rep._components = [raw]
                reps = [rep]
            else:
                reps = [Repetition(r, self._message) for r in raw.split(self._message.separators.repetition)]
            self._reps[number] = reps
        return reps

    def get(self, number: int, component: int = 1, subcomponent: int | None = None, repetition: int = 1) -> str:
        if self.name == "MSH" and number <= 2:
            return self.field(number)
        reps = self.repetitions(number)
        if repetition > len(reps):
            return ""
        return reps[repetition - 1].get(component, subcomponent)

    def __repr__(self) -> str:
        return f"Segment({self.name}, {len(self.fields) - 1} fields)"


@dataclass
class Message:
    segments: list[Segment]
    separators: Separators
    codec: str = "utf-8"
    by_name: dict[str, list[Segment]] = field(default_factory=dict)

    @property
    def msh(self) -> Segment:
        return self.segments[0]

    def all(self, name: str) -> list[Segment]:
        return self.by_name.get(name, [])

    def first(self, name: str) -> Segment | None:
        found = self.by_name.get(name)
        return found[0] if found else None

    @property
    def message_type(self) -> tuple[str, str, str]:
        """MSH-9 as (message code, trigger event, structure)."""
        msh = self.msh
        return msh.get(9, 1), msh.get(9, 2), msh.get(9, 3)

    @property
    def control_id(self) -> str:
        return self.msh.get(10)

    @property
    def version(self) -> str:
        return self.msh.get(12)


def parse_message(text: str, codec: str = "utf-8") -> Message:
    """Parse decoded message text; raise V2ParseError naming where it is broken."""
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.strip("\r\n\x0b\x1c ")
    if not text.startswith("MSH"):
        raise V2ParseError("message does not start with an MSH segment", "MSH")
    if len(text) < 8:
        raise V2ParseError("MSH segment is truncated before its encoding characters", "MSH-2")
    field_sep = text[3]
    if field_sep.isalnum() or field_sep in "\r\n ":
        raise V2ParseError(f"invalid field separator {field_sep!r} in MSH-1", "MSH-1")
    encoding_end = text.find(field_sep, 4)
    encoding = text[4:encoding_end] if encoding_end != -1 else text[4:].split("\r")[0]
    if len(encoding) not in (4, 5) or len(set(encoding)) != len(encoding) or field_sep in encoding or any(
        c.isalnum() or c.isspace() for c in encoding
    ):
        raise V2ParseError(f"invalid encoding characters {encoding!r} in MSH-2 (expected 4 distinct delimiters such as ^~\\&)", "MSH-2")
    seps = Separators(field_sep, encoding[0], encoding[1], encoding[2], encoding[3])
    message = Message([], seps, codec)
    by_name = message.by_name
    lines = _LINE_BREAKS.split(text) if "\n" in text else text.split("\r")
    for number, line in enumerate(lines):
        if not line:
            continue
        parts = line.split(field_sep)
        name = parts[0]
        if not _SEGMENT_NAME.match(name):
            raise V2ParseError(f"segment {number + 1} has an invalid name {name[:10]!r} (wrong separator or broken segment terminator?)", f"segment {number + 1}")
        if name == "MSH":
            if number:
                raise V2ParseError("a second MSH segment: more than one message in one frame", f"segment {number + 1}")
            parts.insert(1, field_sep)  # MSH-1 is the field separator itself
        segment = Segment(name, parts, len(message.segments), message)
        message.segments.append(segment)
        by_name.setdefault(name, []).append(segment)
    msh = message.msh
    if len(msh.fields) < 13:
        raise V2ParseError("MSH is truncated: it needs at least MSH-9 message type, MSH-10 control id and MSH-12 version", "MSH")
    if not msh.get(9, 1):
        raise V2ParseError("MSH-9 message type is empty", "MSH-9")
    if not msh.get(10):
        raise V2ParseError("MSH-10 message control id is empty", "MSH-10")
    return message
