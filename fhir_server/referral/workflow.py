"""The referral Task and ServiceRequest state machines, and the audit trail of every transition.

A referral is a ServiceRequest (what is asked) plus a Task (who does what about it, and where it
stands), as in HL7 BSeR and the Ontario eReferral guide. The request only moves
draft → active → completed/revoked; acceptance, rejection, arrival and completion live on the
Task, advanced by its owner (the receiving referral centre); only the requester cancels.

The write check judges one write (409 for a transition the machine does not allow, 422 for a
transition missing what it needs, 403 when the caller is the wrong side). The pre-commit hook
runs once per transaction, after every entry is written: it records a Provenance for each
transition, creates the Task for a request sent alone, and closes the request when its Task ends.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from datetime import datetime, timedelta, timezone

from fhir_server.errors import FhirError, issue
from fhir_server.formats import json as fjson
from fhir_server.security.context import current_caller

from . import vocabulary as v
from .facts import Facts, local_reference
from .rules import RuleBook, parse_instant

#: the organisation the current request acts for (``Organization/id``), set by the access layer; None = unknown
CALLER_ORGANIZATION: ContextVar[str | None] = ContextVar("referral_caller_organization", default=None)


@contextlib.contextmanager
def acting_as(organization: str | None):
    """Run the enclosed writes on behalf of ``organization`` (what the security layer sets per request)."""
    token = CALLER_ORGANIZATION.set(organization)
    try:
        yield
    finally:
        CALLER_ORGANIZATION.reset(token)


def caller_identity() -> tuple[str | None, str | None]:
    """(organisation, practitioner role) the current request acts for: an explicit :func:`acting_as`, else the
    authenticated caller of the security layer. Platform administrators act for no side (None)."""
    explicit = CALLER_ORGANIZATION.get()
    if explicit:
        return explicit, None
    caller = current_caller()
    if caller is None or caller.admin:
        return None, None
    return caller.organization, caller.practitioner_role


#: status → statuses it may move to (None: creation)
TASK_TRANSITIONS: dict[str | None, tuple[str, ...]] = {
    None: ("draft", "requested"),
    "draft": ("requested", "cancelled"),
    "requested": ("received", "cancelled"),
    "received": ("accepted", "rejected", "cancelled"),
    "accepted": ("in-progress", "cancelled"),
    "in-progress": ("completed", "failed"),
    "rejected": (), "cancelled": (), "completed": (), "failed": (),
}
#: who makes a transition into each status
OWNER_MOVES = frozenset({"received", "accepted", "rejected", "in-progress", "completed", "failed"})
REQUESTER_MOVES = frozenset({"requested", "cancelled"})
#: business statuses (IG CodeSystem referral-business-status) allowed with each Task.status
BUSINESS_STATUSES: dict[str, frozenset[str]] = {
    "draft": frozenset({"submitted"}),
    "requested": frozenset({"submitted"}),
    "received": frozenset({"received", "under-review", "returned"}),
    "accepted": frozenset({"accepted", "booked"}),
    "in-progress": frozenset({"arrived"}),
    "completed": frozenset({"completed"}),
    "rejected": frozenset({"rejected"}),
    "cancelled": frozenset({"cancelled"}),
    "failed": frozenset({"expired"}),
}
TERMINAL = frozenset({"rejected", "cancelled", "completed", "failed"})

REQUEST_TRANSITIONS: dict[str | None, tuple[str, ...]] = {
    None: ("draft", "active"),
    "draft": ("active", "revoked", "entered-in-error"),
    "active": ("on-hold", "completed", "revoked", "entered-in-error"),
    "on-hold": ("active", "revoked", "entered-in-error"),
    "completed": (), "revoked": (), "entered-in-error": (),
}

IMMUTABLE_TASK_FIELDS = ("focus", "for", "requester")
#: marks the Provenance the workflow writes: the audit trail, which clients may neither change nor delete
WORKFLOW_TAG = {"system": f"{v.SERVER_BASE}/CodeSystem/record-origin", "code": "referral-workflow"}
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"


def business_status(task: dict) -> str | None:
    found = v.codes(task.get("businessStatus"), v.CS_BUSINESS_STATUS)
    return found[0] if found else None


def is_referral_task(task: dict, facts: Facts | None = None) -> bool:
    if v.REFERRAL_TASK_PROFILE in ((task.get("meta") or {}).get("profile") or []):
        return True
    if business_status(task) is not None:
        return True
    focus = local_reference(task.get("focus"))
    if facts is not None and focus and focus.startswith("ServiceRequest/"):
        request = facts.get(focus)
        return request is not None and v.is_referral_request(request)
    return False


def _illegal(kind: str, current: str | None, wanted: str, allowed: tuple[str, ...]) -> FhirError:
    where = "creation" if current is None else current
    options = ", ".join(allowed) if allowed else "none (the status is final)"
    message = (f"{kind}.status may not move from {where} to {wanted}; allowed from {where}: {options} — "
               f"状态不可由 {where} 变为 {wanted}，允许：{options}")
    return FhirError(409, message, "business-rule", [f"{kind}.status"])


def _without_meta(resource: dict | None) -> dict:
    return {k: val for k, val in (resource or {}).items() if k not in ("meta", "id", "text")}


def task_sides(facts: Facts, task: dict) -> tuple[str | None, str | None]:
    """(owner organisation, requester organisation) of a Task."""
    return local_reference(task.get("owner")), facts.organization_ref(task.get("requester"))


def required_side(task: dict, previous: dict | None) -> str | None:
    """Which side a write is for: the requester sends and cancels; the owner answers, books, forwards, closes."""
    if previous is None:
        return "requester"
    current, wanted = previous.get("status"), task.get("status")
    if wanted != current:
        return "owner" if wanted in OWNER_MOVES else "requester" if wanted in REQUESTER_MOVES else None
    if business_status(task) != business_status(previous) or \
            local_reference(task.get("owner")) != local_reference(previous.get("owner")):
        return "owner"
    return None


def check_task(facts: Facts, task: dict, previous: dict | None, caller: str | None) -> list[dict]:
    current = previous.get("status") if previous else None
    wanted = task.get("status")
    problems: list[dict] = []
    if previous is not None and current in TERMINAL and _without_meta(previous) != _without_meta(task):
        raise _illegal("Task", current, wanted, ())
    if wanted != current or previous is None:
        allowed = TASK_TRANSITIONS.get(current, ())
        if wanted not in allowed:
            raise _illegal("Task", current, wanted, allowed)
    if previous is not None:
        for name in IMMUTABLE_TASK_FIELDS:
            if local_reference(previous.get(name)) != local_reference(task.get(name)):
                raise FhirError(409, f"Task.{name} may not change once the referral is sent — 转诊任务的 {name} 不可更改",
                                "business-rule", [f"Task.{name}"])
        if local_reference(previous.get("owner")) != local_reference(task.get("owner")) and \
                current not in ("draft", "requested", "received"):
            raise FhirError(409, f"Task.owner may not change once the referral is {current} — 已{current}的转诊不可改派",
                            "business-rule", ["Task.owner"])
    # who may do it
    side = required_side(task, previous) if caller else None
    if side is not None:
        owner, requester = task_sides(facts, previous or task)
        if side == "owner" and caller != owner:
            raise FhirError(403, f"only the receiving organisation ({owner}) may move the referral to {wanted} — "
                                 f"仅接收方可执行此操作", "forbidden", ["Task.status"])
        if side == "requester" and caller != requester:
            raise FhirError(403, f"only the referring organisation ({requester}) may "
                                 f"{'send' if previous is None else 'move'} the referral"
                                 f"{'' if previous is None else ' to ' + str(wanted)} — 仅转出方可执行此操作",
                            "forbidden", ["Task.status"])
    # what the new status needs
    code = business_status(task)
    if code is not None and wanted in BUSINESS_STATUSES and code not in BUSINESS_STATUSES[wanted]:
        problems.append(issue("error", "business-rule",
                              f"businessStatus '{code}' does not fit Task.status '{wanted}'; expected one of "
                              f"{', '.join(sorted(BUSINESS_STATUSES[wanted]))}", ["Task.businessStatus"]))
    if wanted != current:
        if wanted == "rejected" and not (task.get("statusReason") or {}).get("text") and \
                not v.codes(task.get("statusReason")):
            problems.append(issue("error", "required", "a rejection needs Task.statusReason — 拒绝须说明原因",
                                  ["Task.statusReason"]))
        if wanted == "in-progress" and not _has_encounter(facts, task):
            problems.append(issue("error", "business-rule",
                                  "in-progress means the patient arrived: an Encounter basedOn the referral is needed "
                                  "— 须先登记基于该转诊的就诊（Encounter）", ["Task.status"]))
        if wanted == "completed" and not _has_output_document(facts, task):
            problems.append(issue("error", "business-rule",
                                  "completing a referral needs Task.output with the consultation result or discharge "
                                  "summary (DocumentReference) — 完成转诊须附诊疗结果/出院小结", ["Task.output"]))
    return problems


def _has_encounter(facts: Facts, task: dict) -> bool:
    for entry in task.get("input") or []:
        ref = local_reference(entry.get("valueReference"))
        if ref and ref.startswith("Encounter/") and facts.get(ref):
            return True
    focus = local_reference(task.get("focus"))
    return bool(focus and facts.query("Encounter", f"based-on={focus}", limit=1))


def _has_output_document(facts: Facts, task: dict) -> bool:
    for entry in task.get("output") or []:
        ref = local_reference(entry.get("valueReference"))
        if ref and ref.startswith("DocumentReference/") and facts.get(ref):
            return True
    return False


def check_request(request: dict, previous: dict | None) -> None:
    current = previous.get("status") if previous else None
    wanted = request.get("status")
    if previous is not None and wanted == current:
        return
    allowed = REQUEST_TRANSITIONS.get(current, ())
    if wanted not in allowed:
        raise _illegal("ServiceRequest", current, wanted, allowed)


# ---- after every entry of the transaction is written ----------------------------------------------


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _changes(resource: dict, previous: dict | None) -> list[str]:
    if previous is None:
        return [f"created ({resource.get('status')})"]
    changes = []
    if previous.get("status") != resource.get("status"):
        changes.append(f"status {previous.get('status')} → {resource.get('status')}")
    if resource.get("resourceType") == "Task":
        if business_status(previous) != business_status(resource):
            changes.append(f"businessStatus {business_status(previous)} → {business_status(resource)}")
        if local_reference(previous.get("owner")) != local_reference(resource.get("owner")):
            changes.append(f"owner {local_reference(previous.get('owner'))} → {local_reference(resource.get('owner'))}")
    return changes


def provenance(record, resource: dict, previous: dict | None, changes: list[str], who: str | None,
               role: str | None = None) -> dict:
    """The audit record of one transition: the new version, who (role on behalf of organisation), what changed."""
    target = f"{record.resource_type}/{record.id}/_history/{record.version}"
    prov: dict = {
        "resourceType": "Provenance",
        "meta": {"tag": [WORKFLOW_TAG]},
        "target": [{"reference": target}],
        "recorded": record.last_updated,
        "activity": {"coding": [{"system": DATA_OPERATION, "code": "CREATE" if previous is None else "UPDATE"}],
                     "text": "; ".join(changes)},
        "agent": [{"type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "author"}]},
                   "who": {"reference": who} if who else {"display": "unknown"}}],
    }
    if role and who:
        prov["agent"][0].update(who={"reference": role}, onBehalfOf={"reference": who})
    if previous is not None:
        prov["entity"] = [{"role": "revision",
                           "what": {"reference": f"{record.resource_type}/{record.id}/_history/{record.version - 1}"}}]
    if resource.get("resourceType") == "Task" and resource.get("status") == "rejected" and resource.get("statusReason"):
        prov["reason"] = [resource["statusReason"]]
    return prov


def _actor(facts: Facts, resource: dict, previous: dict | None, caller: str | None) -> str | None:
    if caller:
        return caller
    if resource.get("resourceType") == "Task":
        if resource.get("status") in OWNER_MOVES and previous is not None:
            return local_reference(resource.get("owner"))
        return facts.organization_ref(resource.get("requester")) or local_reference(resource.get("requester"))
    return facts.organization_ref(resource.get("requester")) or local_reference(resource.get("requester"))


def new_task_for(request_ref: str, request: dict, receiver: str | None, hours: float, now: datetime) -> dict:
    label = v.BUSINESS_STATUS["submitted"]
    task: dict = {
        "resourceType": "Task",
        "meta": {"profile": [v.REFERRAL_TASK_PROFILE]},
        "status": "requested",
        "businessStatus": {"coding": [{"system": v.CS_BUSINESS_STATUS, "code": "submitted", "display": label[0]}],
                           "text": label[1]},
        "intent": "order",
        "priority": request.get("priority", "routine"),
        "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
        "focus": {"reference": request_ref},
        "for": request.get("subject"),
        "authoredOn": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "requester": request.get("requester"),
        "owner": {"reference": receiver} if receiver else None,
        "restriction": {"period": {"end": (now + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")}},
    }
    consortium = v.extension(request, v.CONSORTIUM)
    if consortium:
        task["extension"] = [consortium]
    return {k: val for k, val in task.items() if val is not None}


class Workflow:
    """The write check and pre-commit hook, bound to one repository and its rule book."""

    def __init__(self, repository, rule_book: RuleBook):
        self.repository = repository
        self.rule_book = rule_book

    def check(self, session, resource_type: str, resource: dict, previous: dict | None) -> list[dict]:
        if resource_type == "Provenance" and previous is not None and _is_workflow_record(previous):
            raise FhirError(409, "the referral audit trail cannot be changed — 转诊审计记录不可修改",
                            "business-rule")
        if resource_type == "ServiceRequest" and v.is_referral_request(resource):
            check_request(resource, previous)
            return []
        if resource_type == "Task":
            facts = Facts(session)
            if is_referral_task(resource, facts) or (previous and is_referral_task(previous, facts)):
                return check_task(facts, resource, previous, caller_identity()[0])
        return []

    def precommit(self, session, records: list) -> None:
        facts = Facts(session)
        caller, role = caller_identity()
        for record in records:
            if record.deleted:
                self._guard_deletion(session, facts, record)
                continue
            if record.resource_type not in ("Task", "ServiceRequest"):
                continue
            resource = self.repository.store.parsed(record)
            previous = None
            if record.version > 1:
                before = session.vread(record.resource_type, record.id, record.version - 1)
                previous = fjson.loads(before.body) if before is not None and not before.deleted else None
            if record.resource_type == "Task":
                if not is_referral_task(resource, facts):
                    continue
                focus = facts.get(resource.get("focus"))
                if focus is None or focus.get("resourceType") != "ServiceRequest":
                    raise FhirError(422, f"Task/{record.id}: Task.focus must be the referral ServiceRequest — "
                                         "转诊任务须指向转诊申请", "business-rule", ["Task.focus"])
                self._close_request(session, facts, resource, previous, focus)
            elif not v.is_referral_request(resource):
                continue
            else:
                self._ensure_task(session, facts, record, resource, previous)
            changes = _changes(resource, previous)
            if changes:
                who = _actor(facts, resource, previous, caller)
                self.repository.create_in(session, provenance(record, resource, previous, changes, who, role))

    @staticmethod
    def _guard_deletion(session, facts: Facts, record) -> None:
        """The audit trail is never deleted; an open referral is cancelled or revoked, not deleted."""
        if record.resource_type not in ("Provenance", "Task", "ServiceRequest") or record.version < 2:
            return
        before = session.vread(record.resource_type, record.id, record.version - 1)
        if before is None or before.deleted:
            return
        previous = fjson.loads(before.body)
        if record.resource_type == "Provenance" and _is_workflow_record(previous):
            raise FhirError(409, "the referral audit trail cannot be deleted — 转诊审计记录不可删除", "business-rule")
        if record.resource_type == "Task" and is_referral_task(previous, facts) and previous.get("status") not in TERMINAL:
            raise FhirError(409, f"an open referral Task ({previous.get('status')}) is cancelled, not deleted — "
                                 "进行中的转诊应撤销而非删除", "business-rule")
        if record.resource_type == "ServiceRequest" and v.is_referral_request(previous) and \
                previous.get("status") in ("active", "on-hold"):
            raise FhirError(409, "an active referral is revoked, not deleted — 生效的转诊申请应撤回而非删除",
                            "business-rule")

    def _ensure_task(self, session, facts: Facts, record, request: dict, previous: dict | None) -> None:
        if request.get("status") != "active" or (previous or {}).get("status") == "active":
            return
        ref = f"ServiceRequest/{record.id}"
        if facts.query("Task", f"focus={ref}", limit=1):
            return
        performers = request.get("performer") or []
        receiver = facts.organization_ref(performers[0]) if performers else None
        rule_set = self.rule_book.for_organization(facts.organization(request.get("requester")))
        hours = rule_set.param("responseHours", default=48)
        self.repository.create_in(session, new_task_for(ref, request, receiver, hours, datetime.now(timezone.utc)))

    def _close_request(self, session, facts: Facts, task: dict, previous: dict | None, request: dict) -> None:
        status = task.get("status")
        if previous is None or previous.get("status") == status:
            return
        target = {"completed": "completed", "cancelled": "revoked"}.get(status)
        if target is None or request.get("status") not in ("active", "draft", "on-hold"):
            return
        if target == "completed" and request.get("status") != "active":
            return
        self.repository.update_in(session, "ServiceRequest", request["id"], {**request, "status": target})


def _is_workflow_record(resource: dict) -> bool:
    return any(tag.get("system") == WORKFLOW_TAG["system"] and tag.get("code") == WORKFLOW_TAG["code"]
               for tag in (resource.get("meta") or {}).get("tag") or [])


def response_deadline(task: dict, rule_book: RuleBook, facts: Facts) -> datetime | None:
    """When the receiving centre must have answered: Task.restriction.period.end, else authoredOn + region hours."""
    end = parse_instant(((task.get("restriction") or {}).get("period") or {}).get("end"))
    if end is not None:
        return end
    authored = parse_instant(task.get("authoredOn"))
    if authored is None:
        return None
    rule_set = rule_book.for_organization(facts.organization(task.get("requester")))
    return authored + timedelta(hours=rule_set.param("responseHours", default=48))


__all__ = ["Workflow", "acting_as", "caller_identity", "CALLER_ORGANIZATION", "TASK_TRANSITIONS",
           "REQUEST_TRANSITIONS", "response_deadline"]
