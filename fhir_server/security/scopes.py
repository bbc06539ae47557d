"""SMART on FHIR scopes, v1 and v2 syntax, for backend services (``system/`` context).

``system/Patient.read`` (v1: read and search), ``system/Task.write`` (v1: create, update,
delete), ``system/*.*``, and v2 ``system/ServiceRequest.rs``, ``system/Task.cu``,
``system/*.cruds``. A v2 scope with a query (``system/Observation.rs?category=…``)
narrows access to matching resources; this server does not evaluate such filters, so it
never grants them (granting them unfiltered would widen access).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

LETTERS = "cruds"
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}
_SCOPE = re.compile(r"^(system|user|patient)/(\*|[A-Z][A-Za-z]+)\.([a-z*]+)(\?.*)?$")


class ScopeError(ValueError):
    """A scope string this server does not understand or will not grant."""


@dataclass(frozen=True)
class Scope:
    text: str
    context: str
    resource_type: str
    letters: frozenset


def parse_scope(text: str) -> Scope:
    match = _SCOPE.match(text)
    if not match:
        raise ScopeError(f"'{text}' is not a SMART resource scope")
    context, resource_type, action, query = match.groups()
    if query:
        raise ScopeError(f"'{text}': scopes with a query filter are not supported")
    if action in _V1:
        letters = _V1[action]
    else:
        # v2: a non-empty subsequence of c r u d s, in that order
        position = -1
        for letter in action:
            index = LETTERS.find(letter)
            if index <= position:
                raise ScopeError(f"'{text}': '{action}' is not a SMART v2 permission (letters in order c r u d s)")
            position = index
        letters = action
    return Scope(text, context, resource_type, frozenset(letters))


@dataclass(frozen=True)
class Permissions:
    """Letters granted per resource type (``*`` for every type)."""

    grants: dict = field(default_factory=dict)

    @classmethod
    def of(cls, scopes) -> "Permissions":
        grants: dict[str, frozenset] = {}
        for scope in scopes:
            if isinstance(scope, str):
                scope = parse_scope(scope)
            grants[scope.resource_type] = grants.get(scope.resource_type, frozenset()) | scope.letters
        return cls(grants)

    def allows(self, letter: str, resource_type: str) -> bool:
        return letter in self.grants.get(resource_type, ()) or letter in self.grants.get("*", ())

    def covers(self, scope: Scope) -> bool:
        """Does this set of permissions include everything ``scope`` asks for?"""
        types = ("*",) if scope.resource_type == "*" else (scope.resource_type,)
        return all(all(self.allows(letter, t) for letter in scope.letters) for t in types) and (
            scope.resource_type != "*" or scope.letters <= self.grants.get("*", frozenset()))


def grant(requested: str, registered: list[str]) -> list[str]:
    """The requested ``system/`` scopes the client's registration allows (others are dropped).

    Raises ScopeError when nothing requested can be granted.
    """
    allowed = Permissions.of(registered)
    granted, reasons = [], []
    for text in requested.split():
        try:
            scope = parse_scope(text)
        except ScopeError as exc:
            reasons.append(str(exc))
            continue
        if scope.context != "system":
            reasons.append(f"'{text}': backend services receive system/ scopes only")
        elif not allowed.covers(scope):
            reasons.append(f"'{text}' is beyond the client's registered scopes")
        else:
            granted.append(text)
    if not granted:
        raise ScopeError("; ".join(reasons) or "no scope requested")
    return granted


#: interaction → the SMART v2 letter it needs
INTERACTION_LETTER = {
    "read": "r", "vread": "r", "history-instance": "r",
    "search-type": "s", "search-system": "s", "history-type": "s", "history-system": "s",
    "create": "c", "update": "u", "patch": "u", "delete": "d",
}
