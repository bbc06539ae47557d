"""The engine's view of a parsed HL7 v2 message: anchors, path selection, data types, unused fields."""

from __future__ import annotations

from fhir_server.mapping.engine import Run, Source
from fhir_server.mapping.errors import MappingError
from fhir_server.mapping.hl7v2 import datatypes
from fhir_server.mapping.hl7v2.parser import Message, Repetition, Segment
from fhir_server.mapping.hl7v2.paths import V2Path
from fhir_server.mapping.specs import ResourceDef, Rule, Spec

#: MSH fields the transport and ACK logic read themselves (17/19: country and language of the message)
MSH_HANDLED = frozenset({1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 15, 16, 17, 18, 19})


_EMPTY: list = []
_MISSING = object()


class V2Value:
    """A repetition, or one component of it, addressed like a composite value."""

    __slots__ = ("rep", "component", "subcomponent", "segment", "field")

    def __init__(self, rep: Repetition, component: int | None, subcomponent: int | None, segment: Segment, field: int):
        self.rep = rep
        self.component = component
        self.subcomponent = subcomponent
        self.segment = segment
        self.field = field

    def get(self, component: int, subcomponent: int | None = None) -> str:
        if self.component is None:
            return self.rep.get(component, subcomponent)
        if self.subcomponent is None:
            return self.rep.get(self.component, component)
        return self.text() if component == 1 else ""

    def text(self) -> str:
        if self.component is None:
            return self.rep.get(1)
        return self.rep.get(self.component, self.subcomponent)

    def relative(self, component: int, subcomponent: int | None) -> "V2Value":
        if self.component is None:
            return V2Value(self.rep, component, subcomponent, self.segment, self.field)
        if self.subcomponent is None:
            return V2Value(self.rep, self.component, component, self.segment, self.field)
        return self

    def location(self) -> str:
        where = f"{self.segment.name}-{self.field}"
        if self.component:
            where += f".{self.component}"
            if self.subcomponent:
                where += f".{self.subcomponent}"
        return where


class V2Source(Source):
    def __init__(self, message: Message):
        self.message = message
        #: (segment index, field number) pairs some rule read
        self.used: set[tuple[int, int]] = set()
        self._group_cache: dict = {}

    def anchors(self, rdef: ResourceDef) -> list:
        if rdef.anchor is None:
            return [None]
        return self.message.all(rdef.anchor)

    def group_of(self, anchor):
        return anchor.index if anchor is not None else None

    def quantity(self, item):
        return (item.get(1), item.get(2)) if isinstance(item, V2Value) else None

    def same_kind(self, a, b) -> bool:
        return a is not None and b is not None and a.name == b.name

    def segment_for(self, name: str, anchor: Segment | None) -> Segment | None:
        """The segment a path means: the anchor itself, one in the anchor's group, else the first."""
        if anchor is None:
            return self.message.first(name)
        if anchor.name == name:
            return anchor
        scoped = name in self.scoped
        key = (anchor.index, name, scoped)
        cached = self._group_cache.get(key, _MISSING)
        if cached is not _MISSING:
            return cached
        found = None
        for segment in self.message.segments[anchor.index + 1 :]:
            if segment.name == anchor.name:
                break
            if segment.name == name:
                found = segment
                break
        if found is None and not scoped:
            found = self.message.first(name)
        self._group_cache[key] = found
        return found

    def select(self, anchor, item, path: V2Path) -> list:
        if path.segment is None:
            return [item.relative(path.component, path.subcomponent)] if item is not None else []
        segment = anchor if anchor is not None and anchor.name == path.segment else self.segment_for(path.segment, anchor)
        if segment is None:
            return _EMPTY
        number = path.field
        self.used.add((segment.index, number))
        reps = segment.repetitions(number)
        if not reps:
            return _EMPTY
        component, subcomponent = path.component, path.subcomponent
        out = []
        for rep in reps:
            if rep:
                value = V2Value(rep, component, subcomponent, segment, number)
                if component is None or subcomponent is None or value.text():
                    out.append(value)
        return out

    def text(self, item: V2Value) -> str:
        text = item.text()
        return "" if text == '""' else text

    def location(self, anchor, item, path) -> str:
        if isinstance(item, V2Value):
            return item.location()
        if isinstance(path, V2Path) and path.segment:
            return path.text
        return getattr(path, "text", "")

    def composite(self, type_name: str, item: V2Value, rule: Rule, run: Run):
        if type_name == "CX":
            value = item.get(1)
            if not value:
                return None
            out: dict = {}
            type_code = item.get(5)
            if type_code:
                out["type"] = datatypes.identifier_type(type_code)
            system = run.system_for(rule, None, item)
            if system:
                out["system"] = system
            else:
                run.warn(f"{item.location()}: no identifier system for assigning authority {item.get(4)!r} / type {type_code!r}")
            out["value"] = value
            return out
        if type_name in ("EI", "HD"):
            value = item.get(1)
            if not value:
                return None
            out = {}
            system = run.system_for(rule, None, item)
            if system:
                out["system"] = system
            out["value"] = value
            return out
        if type_name == "XCN-identifier":
            value = item.get(1)
            if not value:
                return None
            out = {}
            system = run.system_for(rule, None, item)
            if system:
                out["system"] = system
            out["value"] = value
            return out
        if type_name == "XPN":
            return datatypes.human_name(item)
        if type_name == "XCN-name":
            return datatypes.xcn_name(item)
        if type_name == "XAD":
            return datatypes.address(item)
        if type_name == "XTN":
            return datatypes.contact_point(item)
        if type_name in ("CWE", "CE", "CNE", "CF"):
            coding = datatypes.coding(item, 1, lambda table: run.system_for(rule, None, _Table(table)) if table else run.system_for(rule, None, None))
            if coding is None:
                return None
            codeable = {"coding": [coding]}
            alternate = datatypes.coding(item, 4, lambda table: run.system_for(rule, None, _Table(table)) if table else "")
            if alternate and alternate.get("code"):
                codeable["coding"].append(alternate)
            text = item.get(9) or coding.get("display")
            if text:
                codeable["text"] = text
            return run.translate_coding(rule, codeable, None, item)
        if type_name == "CQ":
            number = item.get(1)
            if not number:
                return None
            quantity: dict = {"value": run.scalar(_DECIMAL_RULE, number, None, item)}
            unit = item.get(2, 1)
            if unit:
                quantity["unit"] = item.get(2, 2) or unit
                if rule.conceptmap is not None:
                    hit = rule.conceptmap.translate(unit)
                    if hit is None:
                        run.warn(f"{item.location()}: unit {unit!r} is not in ConceptMap {rule.conceptmap.id}; kept as text")
                    else:
                        quantity["system"] = hit.system or "http://unitsofmeasure.org"
                        quantity["code"] = hit.code
            return quantity
        raise MappingError(f"{rule.where}: type {type_name!r} is not an HL7 v2 data type this engine knows")

    def unused(self, spec: Spec) -> list[str]:
        warnings = []
        touched = {index for index, _ in self.used}
        for segment in self.message.segments:
            name = segment.name
            if name in spec.ignored_segments:
                continue
            if name == "MSH":
                fields = [n for n in range(3, len(segment.fields)) if n not in MSH_HANDLED]
            else:
                fields = range(1, len(segment.fields))
            ordinal = f"{name}" if len(self.message.all(name)) == 1 else f"{name}[{self.message.all(name).index(segment) + 1}]"
            if name != "MSH" and segment.index not in touched:
                if any(segment.fields[n] for n in fields):
                    warnings.append(f"segment {ordinal} is not mapped by {spec.id}")
                continue
            for n in fields:
                raw = segment.fields[n]
                if raw and raw != '""' and (segment.index, n) not in self.used and f"{name}-{n}" not in spec.ignored_fields:
                    warnings.append(f"{ordinal}-{n} ({raw[:40]!r}) is not mapped by {spec.id}")
        return warnings


class _Table:
    """Lets a coding system table name go through ``systemFrom`` ConceptMaps (component 1)."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def get(self, component: int, subcomponent=None) -> str:
        return self.name if component == 1 else ""


_DECIMAL_RULE = Rule(where="CQ.1", target=(), type="decimal")
