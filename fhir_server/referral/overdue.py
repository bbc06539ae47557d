"""Overdue referrals: Tasks not answered within the region's response time.

A Task is unanswered while it is ``requested`` or ``received``; its deadline is
``Task.restriction.period.end``, else ``authoredOn`` plus the governing rule set's
``responseHours``. Reported by ``Task/$overdue`` as a searchset Bundle (a worklist).
"""

from __future__ import annotations

from datetime import datetime, timezone

from .facts import Facts
from .rules import RuleBook
from .workflow import response_deadline

UNANSWERED = ("requested", "received")


def overdue_tasks(session, rule_book: RuleBook, now: datetime | None = None,
                  owner: str | None = None) -> list[tuple[dict, datetime]]:
    """(Task, deadline) for every unanswered Task past its deadline, oldest deadline first."""
    now = now or datetime.now(timezone.utc)
    facts = Facts(session)
    query = "status=" + ",".join(UNANSWERED)
    if owner:
        query += f"&owner={owner}"
    found = []
    for task in facts.query("Task", query):
        deadline = response_deadline(task, rule_book, facts)
        if deadline is not None and deadline < now:
            found.append((task, deadline))
    found.sort(key=lambda item: item[1])
    return found
