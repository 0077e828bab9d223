"""What the desk shows of a contact beyond the API's summary: its deadline state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from contacts.models import Contact, Status
from kcc.api.views import contact_summary, iso


def outstanding_deadlines(contact: Contact) -> list[tuple[str, datetime]]:
    """The deadlines still to be met: acknowledgement and answer."""
    due: list[tuple[str, datetime]] = []
    if contact.ack_due is not None and contact.acked_at is None:
        due.append(("ack", contact.ack_due))
    if contact.answer_due is not None and contact.answered_at is None:
        due.append(("answer", contact.answer_due))
    return due


def deadline_state(
    contact: Contact, now: datetime, fraction_left: float
) -> tuple[str, str | None, datetime | None]:
    """("breached" | "at_risk" | "ok" | "none", which norm, its due time) for the most urgent
    deadline. At risk: less than `fraction_left` of the term remains."""
    if contact.status == Status.closed:
        return "none", None, None
    worst: tuple[int, str, str | None, datetime | None] = (0, "none", None, None)
    for norm, due in outstanding_deadlines(contact):
        start = contact.received_at
        if now >= due:
            rank, state = 3, "breached"
        elif due - now <= (due - start) * fraction_left:
            rank, state = 2, "at_risk"
        else:
            rank, state = 1, "ok"
        if rank > worst[0] or (rank == worst[0] and worst[3] is not None and due < worst[3]):
            worst = (rank, state, norm, due)
    return worst[1], worst[2], worst[3]


RANK = {"none": 0, "ok": 1, "at_risk": 2, "breached": 3}


def desk_item(contact: Contact, now: datetime, fraction_left: float) -> dict[str, Any]:
    state, norm, due = deadline_state(contact, now, fraction_left)
    # The SLA engine's own verdict (working days, pauses, warnings) where it keeps one.
    sla_state = getattr(contact, "sla_state", None)
    if sla_state in RANK and RANK[sla_state] > RANK[state] and contact.status != Status.closed:
        state = sla_state
        norm = getattr(contact, "sla_norm", None) or norm
    return contact_summary(contact) | {
        "offered": contact.status == Status.assigned and contact.taken_at is None,
        "waiting_seconds": max(0.0, (now - contact.received_at).total_seconds()),
        "deadline_state": state,
        "deadline_norm": norm,
        "deadline": iso(due),
    }
