"""Imports every domain's tables so metadata (and Alembic) sees them all."""

from relaydesk.admin.models import AuditEntry, Setting
from relaydesk.auth.models import ApiToken, LoginFailure, User, WebSession
from relaydesk.contacts.models import Contact
from relaydesk.messaging.models import Conversation, Message, MessageCounter, MessageEvent

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Contact",
    "Conversation",
    "LoginFailure",
    "Message",
    "MessageCounter",
    "MessageEvent",
    "Setting",
    "User",
    "WebSession",
]
