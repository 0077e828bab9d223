"""JSON views of the model. Resident identifiers appear only in views for staff."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from contacts.models import Attachment, Contact, ContactEvent, Message, Resident


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def contact_summary(contact: Contact) -> dict[str, Any]:
    return {
        "reference": contact.reference,
        "channel": contact.channel,
        "direction": contact.direction,
        "received_at": iso(contact.received_at),
        "subject": contact.subject,
        "topic": contact.topic,
        "skills": contact.skills,
        "kind": contact.kind,
        "language": contact.language,
        "queue": contact.queue,
        "status": contact.status,
        "priority": contact.priority,
        "assigned_agent_id": contact.assigned_agent_id,
        "ack_due": iso(contact.ack_due),
        "answer_due": iso(contact.answer_due),
        "acked_at": iso(contact.acked_at),
        "answered_at": iso(contact.answered_at),
        "closed_at": iso(contact.closed_at),
        "outcome": contact.outcome,
        "sla_norm": contact.sla_norm,
        "sla_state": contact.sla_state,
        "ack_breached_at": iso(contact.ack_breached_at),
        "answer_breached_at": iso(contact.answer_breached_at),
        "extended_at": iso(contact.extended_at),
    }


def resident_view(resident: Resident | None) -> dict[str, Any] | None:
    if resident is None:
        return None
    return {
        "id": resident.id,
        "name": resident.name,
        "phone": resident.phone,
        "email": resident.email,
        "telegram_id": resident.telegram_id,
        "postal_address": resident.postal_address,
        "preferred_channel": resident.preferred_channel,
        "language": resident.language,
        "support_needs": resident.support_needs,
    }


def message_view(message: Message) -> dict[str, Any]:
    return {
        "direction": message.direction,
        "channel": message.channel,
        "at": iso(message.at),
        "agent_id": message.agent_id,
        "body": message.body,
        "delivery_status": message.delivery_status,
        "delivery_detail": message.delivery_detail,
        # The kennisbank article version the reply used (GET /api/kennisbank/articles/...).
        "article": (
            {"slug": message.article_slug, "version": message.article_version}
            if message.article_slug
            else None
        ),
    }


def event_view(event: ContactEvent) -> dict[str, Any]:
    return {
        "at": iso(event.at),
        "type": event.type,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "actor": event.actor,
        "reason": event.reason,
        "data": event.data,
    }


def attachment_view(attachment: Attachment) -> dict[str, Any]:
    return {
        "id": attachment.id,
        "filename": attachment.filename,
        "content_type": attachment.content_type,
        "size": attachment.size,
    }
