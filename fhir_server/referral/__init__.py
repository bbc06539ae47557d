"""Two-way referral: the workflow state machine, the regional rules engine and the reports on them.

:func:`install` wires everything into a repository (write checks, pre-commit hooks);
:func:`services` gives operations the rule book installed for a repository.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from fhir_server.errors import FhirError
from fhir_server.formats import json as fjson

from .facts import Facts
from .rules import RULE_TYPES, RULES_DIR, RuleBook, evaluate, load_rule_sets
from .workflow import Workflow

_WATCHED_FIELDS = {
    "ServiceRequest": ("status", "performer", "requester", "subject", "extension", "reasonCode", "priority"),
    "Encounter": ("serviceProvider", "basedOn", "reasonCode", "diagnosis", "class"),
    "Appointment": ("slot", "basedOn", "status", "priority"),
}


@dataclass
class ReferralServices:
    rule_book: RuleBook
    workflow: Workflow
    _local: threading.local = field(default_factory=threading.local)

    # ---- rules as a write check -----------------------------------------------------------------

    @staticmethod
    def _relevant(resource_type: str, resource: dict, previous: dict | None) -> bool:
        if previous is None:
            return True
        watched = _WATCHED_FIELDS.get(resource_type)
        if watched is None:
            return True
        if resource_type == "ServiceRequest" and previous.get("status") != "active":
            return True
        return any(resource.get(name) != previous.get(name) for name in watched)

    def check_rules(self, session, resource_type: str, resource: dict, previous: dict | None) -> list[dict]:
        if resource_type not in RULE_TYPES or not self._relevant(resource_type, resource, previous):
            return []
        issues, ctx = evaluate(self.rule_book, Facts(session), resource_type, resource, previous)
        if ctx is not None and ctx.missing and any(i["severity"] == "error" for i in issues):
            # a transaction may still write what is missing: judge again once every entry is in
            self._local.deferred = True
            return [i for i in issues if i["severity"] != "error"]
        return issues

    def recheck_deferred(self, session, records: list) -> None:
        if not getattr(self._local, "deferred", False):
            return
        self._local.deferred = False
        facts = Facts(session)
        for record in records:
            if record.deleted or record.resource_type not in RULE_TYPES:
                continue
            resource = fjson.loads(record.body)
            before = session.vread(record.resource_type, record.id, record.version - 1) if record.version > 1 else None
            previous = fjson.loads(before.body) if before is not None and not before.deleted else None
            if not self._relevant(record.resource_type, resource, previous):
                continue
            issues, _ = evaluate(self.rule_book, facts, record.resource_type, resource, previous)
            errors = [i for i in issues if i["severity"] in ("error", "fatal")]
            if errors:
                for entry in errors:
                    entry["diagnostics"] = f"{record.resource_type}/{record.id}: {entry['diagnostics']}"
                raise FhirError(422, errors[0]["diagnostics"], issues=issues)


_SERVICES: "weakref.WeakKeyDictionary[object, ReferralServices]" = weakref.WeakKeyDictionary()


def rule_directories(settings) -> list[Path]:
    extra = (getattr(settings, "extra", None) or {}).get("referral_rules_dirs") or []
    return [RULES_DIR, *[Path(p) for p in extra]]


def install(repository) -> ReferralServices:
    """Register the referral write checks and pre-commit hooks on ``repository``."""
    rule_book = RuleBook(load_rule_sets(rule_directories(repository.settings)),
                         (repository.settings.extra or {}).get("referral_default_rules", "national"))
    referral = ReferralServices(rule_book, Workflow(repository, rule_book))
    repository.add_write_check(referral.workflow.check)
    repository.add_write_check(referral.check_rules)
    repository.add_precommit_hook(referral.recheck_deferred)
    repository.add_precommit_hook(referral.workflow.precommit)
    _SERVICES[repository] = referral
    return referral


def services(repository) -> ReferralServices:
    try:
        return _SERVICES[repository]
    except KeyError:
        raise FhirError(501, "the referral services are not installed on this server", "not-supported") from None
