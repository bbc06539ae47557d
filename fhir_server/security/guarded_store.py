"""The store as a caller sees it: every session checks scopes and the access policy.

Wrapping the store (rather than each route) means every path into the data — REST
interactions, batch/transaction Bundle entries, conditional references, search, the
referral workflow — meets the same checks:

* ``search`` ANDs the caller's policy restriction into the query (chains and ``_has``
  included) and drops ``_include``/``_revinclude`` results the caller may not read;
* ``write`` requires the SMART scope letter for the change (c, u or d), that the current
  version is writable by the caller, and — after writing, inside the same transaction —
  that the new version still is (a member cannot hand a referral to two other members).

Reads by id are checked where the client asks for them (the read and vread routes and Bundle
GET entries through :func:`check_client_read`, the middleware for instance history and
operations), because the repository also reads internally (an update reads the current
version) and those reads must not need a read scope.
With no caller in context (auth off, start-up, the audit writer) everything passes through.
"""

from __future__ import annotations

from ..errors import FhirError
from .context import current, current_caller
from .policy import Policy, quick_visible, restrict_query, visible_ids

_LETTER_WORD = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


def forbidden_scope(letter: str, resource_type: str) -> FhirError:
    return FhirError(403, f"the granted scopes do not allow {_LETTER_WORD[letter]} on {resource_type}", "forbidden")


def not_visible(resource_type: str, id: str) -> FhirError:
    # the same answer as for a resource that does not exist: existence is not confirmed
    return FhirError(404, f"{resource_type}/{id} is not known", "not-found")


class Guard:
    """What the enforcement points share: the policy and the unguarded store."""

    def __init__(self, policy: Policy, store):
        self.policy = policy
        self.store = store

    def check_visible_in(self, session, resource_type: str, id: str, caller, existing_only: bool = False) -> None:
        """404 unless the caller may read ``resource_type/id``; with ``existing_only`` an absent id passes
        (an update may create it).

        Every client read by id passes here, so the common case is one statement: the current version
        with the index's answer for the plan's plain reference rows (``read_admitted``); only a resource
        those rows do not admit goes on to :func:`quick_visible` and the query."""
        if caller.admin:
            return
        plan = self.policy.quick_plan(caller, resource_type)
        if plan is None:
            return
        inner = getattr(session, "inner", session)
        if plan.admits and hasattr(inner, "read_admitted"):
            current, indexed = inner.read_admitted(resource_type, id, plan.admits)
        else:
            current, indexed = inner.read(resource_type, id), None
        if inner is not session:
            session.checked = current  # the read that follows the check takes this record
        if current is None or current.deleted:
            if existing_only:
                return
            raise not_visible(resource_type, id)
        if indexed:  # the common case, decided by the read itself
            return
        if quick_visible(self.policy, inner, caller, current, indexed=indexed):
            return
        if id not in visible_ids(self.policy, inner, caller, resource_type, [id]):
            raise not_visible(resource_type, id)

    def check_read(self, resource_type: str, id: str, caller=None) -> None:
        """A client read of ``resource_type/id`` outside the read routes (instance history, instance operations),
        in a session of its own."""
        caller = caller or current_caller()
        if caller is None:
            return
        with self.store.session() as session:
            check_client_read(session, resource_type, id, caller, self)


class GuardedSession:
    """A session of the inner store with the checks, and its context manager: entering it enters the
    inner store's session (a class, not a generator: one is made per request)."""

    __slots__ = ("inner", "guard", "checked", "_scope")

    def __init__(self, scope, guard: Guard):
        self._scope = scope
        self.inner = None  # the inner session, once entered
        self.guard = guard
        #: the current version a read check just read (same transaction): the client's read takes it once
        self.checked = None

    def __enter__(self) -> "GuardedSession":
        self.inner = self._scope.__enter__()
        return self

    def __exit__(self, exc_type, exc, traceback):
        return self._scope.__exit__(exc_type, exc, traceback)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def read(self, resource_type, id):
        checked, self.checked = self.checked, None
        if checked is not None and checked.id == id and checked.resource_type == resource_type:
            return checked
        return self.inner.read(resource_type, id)

    def vread(self, resource_type, id, version):
        return self.inner.vread(resource_type, id, version)

    def history(self, *args, **kwargs):
        return self.inner.history(*args, **kwargs)

    def search(self, query):
        caller = current_caller()
        if caller is None:
            return self.inner.search(query)
        for resource_type in query.covered_types:
            if not caller.can("s", resource_type):
                raise forbidden_scope("s", resource_type)
        policy = self.guard.policy
        restrict_query(policy, caller, query)
        result = self.inner.search(query)
        if result.included:
            by_type: dict[str, list] = {}
            for record in result.included:
                by_type.setdefault(record.resource_type, []).append(record.id)
            allowed: set = set()
            for resource_type, ids in by_type.items():
                if not caller.can("r", resource_type):
                    continue
                allowed.update((resource_type, i) for i in visible_ids(policy, self.inner, caller, resource_type, ids))
            result.included = [r for r in result.included if (r.resource_type, r.id) in allowed]
        return result

    def write(self, record, resource, expected_version):
        self.checked = None
        caller = current_caller()
        if caller is None:
            return self.inner.write(record, resource, expected_version)
        resource_type, id = record.resource_type, record.id
        existing = None
        if expected_version:
            existing = self.inner.read(resource_type, id)
            if existing is not None and existing.deleted:
                existing = None
        letter = "d" if record.deleted else ("u" if existing is not None else "c")
        if not caller.can(letter, resource_type):
            raise forbidden_scope(letter, resource_type)
        policy = self.guard.policy
        if not caller.admin:
            if resource_type in policy.admin_only:
                raise FhirError(403, f"{resource_type} is written by the server and platform administrators only",
                                "forbidden")
            if existing is not None and not quick_visible(policy, self.inner, caller, existing, "write"):
                if id not in visible_ids(policy, self.inner, caller, resource_type, [id]):
                    raise not_visible(resource_type, id)
                if id not in visible_ids(policy, self.inner, caller, resource_type, [id], mode="write"):
                    raise FhirError(403, f"{caller.organization} may read but not change {resource_type}/{id}",
                                    "forbidden")
        self.inner.write(record, resource, expected_version)
        if not caller.admin and not record.deleted and not quick_visible(policy, self.inner, caller, record, "write",
                                                                         resource):
            if id not in visible_ids(policy, self.inner, caller, resource_type, [id], mode="write"):
                raise FhirError(403, f"the access policy does not let {caller.organization} write this "
                                     f"{resource_type}: it must name the organisation as a party (e.g. requester, "
                                     "owner or performer)", "forbidden")

    def create_many(self, prepared):
        if current_caller() is not None:  # the server's own bookkeeping (AuditEvents), never a client's write
            raise FhirError(403, "resources are created in bulk by the server only", "forbidden")
        return self.inner.create_many(prepared)


class GuardedStore:
    """A store whose sessions are :class:`GuardedSession` s; ``on_close`` runs before the store closes."""

    def __init__(self, inner, guard: Guard | None, on_close=None):
        self.inner = inner
        self.guard = guard
        self.on_close = on_close

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def session(self, write: bool = False):
        if self.guard is None:
            return self.inner.session(write=write)
        return GuardedSession(self.inner.session(write), self.guard)

    def close(self) -> None:
        if self.on_close is not None:
            self.on_close()
        self.inner.close()


def check_client_read(session, resource_type: str, id: str | None, caller=None, guard=None) -> None:
    """A client's read by id (REST read and vread, Bundle GET entries): the read scope and the access policy,
    404 when hidden, checked in the session that then reads; ``id`` None (a Bundle search entry): the search
    scope. The caller and guard are the current ones unless given."""
    if caller is None:
        caller, guard = current()
        if caller is None:  # authentication is off, or the server reads on its own behalf
            return
    guard = getattr(session, "guard", None) or guard
    if guard is None:
        return
    letter = "r" if id is not None else "s"
    if not caller.can(letter, resource_type):
        raise forbidden_scope(letter, resource_type)
    if id is not None:
        guard.check_visible_in(session, resource_type, id, caller)
