"""Source paths of HL7 v2 specs: ``PID-5``, ``PID-5.1``, ``PRD-7.1.2``, or relative ``_.4.1``.

A relative path reads a component of the repetition the enclosing rule is working on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ABSOLUTE = re.compile(r"([A-Z][A-Z0-9]{2})-(\d{1,3})(?:\.(\d{1,3}))?(?:\.(\d{1,3}))?\Z")
_RELATIVE = re.compile(r"_?\.(\d{1,3})(?:\.(\d{1,3}))?\Z")


@dataclass(frozen=True, slots=True)
class V2Path:
    segment: str | None  # None: relative to the current repetition
    field: int
    component: int | None
    subcomponent: int | None
    text: str


def compile_v2_path(text: str) -> V2Path:
    text = text.strip()
    match = _ABSOLUTE.match(text)
    if match:
        segment, field, component, sub = match.groups()
        if int(field) < 1:
            raise ValueError(f"{text!r}: field numbers start at 1")
        return V2Path(segment, int(field), int(component) if component else None, int(sub) if sub else None, text)
    match = _RELATIVE.match(text)
    if match:
        component, sub = match.groups()
        return V2Path(None, 0, int(component), int(sub) if sub else None, text)
    raise ValueError(f"{text!r} is not an HL7 v2 path like 'PID-5.1' or '_.4.1'")
