"""Who is calling: the identity a verified access token carries, visible to every layer.

The middleware puts the caller in a context variable, so the repository, Bundle processing,
search and the referral workflow can ask ``current_caller()`` without any signature change.
``None`` means no authenticated caller: authentication is off, or the code runs on the
server's own behalf (start-up seeding, legacy-message mapping, the audit writer).
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Iterator

from .scopes import Permissions


@dataclass(frozen=True)
class Caller:
    client_id: str
    #: the consortium member the client belongs to, e.g. ``Organization/hosp-a``
    organization: str
    #: optional ``PractitionerRole/…`` the client acts as
    practitioner_role: str | None = None
    #: the granted scopes, as strings
    scopes: tuple[str, ...] = ()
    #: platform administrators see everything and may search AuditEvents
    admin: bool = False
    permissions: Permissions = field(default_factory=Permissions, compare=False)

    @property
    def organization_id(self) -> str:
        return self.organization.rsplit("/", 1)[-1]

    def can(self, letter: str, resource_type: str) -> bool:
        """May this caller do ``letter`` (one of c r u d s) on ``resource_type``?"""
        return self.permissions.allows(letter, resource_type)


_caller: ContextVar[Caller | None] = ContextVar("fhir_caller", default=None)
_guard: ContextVar[object | None] = ContextVar("fhir_guard", default=None)


def current_caller() -> Caller | None:
    """The authenticated caller of the request being served, or None."""
    return _caller.get()


def current_guard():
    """The access guard of the app serving the current request (None when auth is off)."""
    return _guard.get()


@contextmanager
def acting_as(caller: Caller | None, guard=None) -> Iterator[None]:
    """Run a block as ``caller`` (tests, tools); restores the previous caller afterwards."""
    token = _caller.set(caller)
    guard_token = _guard.set(guard)
    try:
        yield
    finally:
        _caller.reset(token)
        _guard.reset(guard_token)


def set_current(caller: Caller | None, guard=None) -> tuple:
    return _caller.set(caller), _guard.set(guard)


def reset_current(tokens: tuple) -> None:
    _caller.reset(tokens[0])
    _guard.reset(tokens[1])
