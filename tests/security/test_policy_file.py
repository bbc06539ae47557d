"""The policy as data: loading, validation at start-up, compilation to search conditions."""

from __future__ import annotations

import json

import pytest

from fhir_server.search.query import AllOf, AnyOf, Chain, Clause, Has
from fhir_server.security.context import Caller
from fhir_server.security.policy import Policy, PolicyError, search_restriction

MEMBER = Caller("c", "Organization/org-a", "PractitionerRole/role-a")


def test_default_policy_compiles_for_every_type():
    policy = Policy.load()
    assert policy.restriction(MEMBER, "Organization", "read") is None  # directory: open
    assert policy.restriction(MEMBER, "AuditEvent", "read") == AnyOf(())  # nothing for members
    service_request = policy.restriction(MEMBER, "ServiceRequest", "read")
    kinds = {type(c) for c in service_request.conditions}
    assert kinds == {Clause, Chain, AllOf}
    patient = policy.restriction(MEMBER, "Patient", "read")
    assert any(isinstance(c, Has) and c.source_type == "ServiceRequest" for c in patient.conditions)


def test_administrators_and_anonymous_callers_are_not_restricted():
    policy = Policy.load()
    admin = Caller("p", "Organization/x", admin=True)
    assert search_restriction(admin, "ServiceRequest", policy) is None
    assert search_restriction(None, "ServiceRequest", policy) is None
    assert search_restriction(MEMBER, "ServiceRequest", policy) is not None


@pytest.mark.parametrize("types", [
    {"ServiceRequest": {"read": ["nonsense-param={org}"]}},
    {"ServiceRequest": {"read": ["requester"]}},
    {"ServiceRequest": {"read": ["subject:Patient={whatever}"]}},
    {"ServiceRequest": {"read": ["status={visible}"]}},
    {"ServiceRequest": {"read": "requester={org}"}},
    {"ServiceRequest": {"read": [[]]}},
])
def test_a_broken_policy_fails_at_load(tmp_path, types):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"types": types}))
    with pytest.raises(PolicyError):
        Policy.load(path)


def test_a_deployment_policy_replaces_the_default(tmp_path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"default": {"read": [], "write": []},
                                "types": {"Patient": {"write": ["organization={org}"]}}}))
    policy = Policy.load(path)
    assert policy.restriction(MEMBER, "Observation", "read") == AnyOf(())  # closed by default here
    assert policy.restriction(MEMBER, "Patient", "read").conditions[0].values[0].id == "org-a"


class BodyOnly:
    """A session without a search index to ask (as MongoDB's): the quick check reads the body."""

    def __init__(self, session):
        self.session = session

    def read(self, resource_type, id):
        return self.session.read(resource_type, id)


def test_quick_check_never_admits_what_the_query_refuses(auth_app, consortium):
    """The by-id shortcut and the query agree on every fixture resource for every member; the shortcut
    decides the same from the stored search index (a store with ``references_any``, asked apart or with the
    read) as from the body."""
    from fhir_server.formats import json as fjson
    from fhir_server.security.policy import quick_visible, visible_ids

    guard = auth_app.state.guard
    resources = [(e["resource"]["resourceType"], e["resource"]["id"]) for e in consortium["entry"]]
    admitted = 0
    with guard.store.session() as session:
        for org in ("org-a", "org-b", "org-c", "org-d"):
            caller = Caller("c", f"Organization/{org}")
            for resource_type, id in resources:
                record = session.read(resource_type, id)
                for mode in ("read", "write"):
                    quick = quick_visible(guard.policy, session, caller, record, mode)
                    assert quick == quick_visible(guard.policy, BodyOnly(session), caller, record, mode,
                                                  fjson.loads(record.body)), (org, resource_type, id, mode)
                    assert quick == quick_visible(guard.policy, BodyOnly(session), caller, record, mode)
                    plan = guard.policy.quick_plan(caller, resource_type, mode)
                    if plan is not None and plan.admits:  # the read check's way: the record and the index's answer
                        checked, indexed = session.read_admitted(resource_type, id, plan.admits)
                        assert checked == record
                        assert quick == quick_visible(guard.policy, session, caller, record, mode, indexed=indexed)
                    if quick:
                        admitted += 1
                        assert id in visible_ids(guard.policy, session, caller, resource_type, [id], mode), \
                            (org, resource_type, id, mode)
    assert admitted > 10  # the shortcut does decide the common cases
