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
from typing import Callable, Iterator

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
    #: ``can(letter, resource_type)``: may this caller do ``letter`` (one of c r u d s) on ``resource_type``?
    #: The permissions' own bound method, so that the check every interaction makes is a single call.
    can: Callable[[str, str], bool] = field(init=False, repr=False, compare=False)
    #: (client id, organisation, PractitionerRole): who the audit trail records, as one value
    identity: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "can", self.permissions.allows)
        object.__setattr__(self, "identity", (self.client_id, self.organization, self.practitioner_role))

    @property
    def organization_id(self) -> str:
        return self.organization.rsplit("/", 1)[-1]


#: (caller, guard) of the request being served: one variable, since each ``set`` copies the context's mapping
_current: ContextVar[tuple] = ContextVar("fhir_caller", default=(None, None))


#: ``current()``: the (caller, guard) pair of the request being served, in one call
current = _current.get


def current_caller() -> Caller | None:
    """The authenticated caller of the request being served, or None."""
    return _current.get()[0]


def current_guard():
    """The access guard of the app serving the current request (None when auth is off)."""
    return _current.get()[1]


@contextmanager
def acting_as(caller: Caller | None, guard=None) -> Iterator[None]:
    """Run a block as ``caller`` (tests, tools); restores the previous caller afterwards."""
    token = _current.set((caller, guard))
    try:
        yield
    finally:
        _current.reset(token)


#: ``set_current((caller, guard))``: make ``caller`` the current caller; returns the token ``reset_current``
#: takes (the variable's own methods: the middleware calls them on every request)
set_current = _current.set
reset_current = _current.reset
