"""Imports every domain's tables so metadata (and Alembic) sees them all."""

from relaydesk.auth.models import ApiToken, LoginFailure, User, WebSession
from relaydesk.automation.models import (
    Assistant,
    AssistantSession,
    AutomationRun,
    ConversationSummary,
    LLMUsage,
    PhoneNumber,
)
from relaydesk.campaigns.models import Batch, Recipient, SendPacer
from relaydesk.contacts.models import Contact
from relaydesk.core.models import AuditEntry, Setting
from relaydesk.digests.models import NewsRecipient
from relaydesk.jobs.models import Job
from relaydesk.media.models import Attachment, MediaLink
from relaydesk.messaging.models import Conversation, Message, MessageCounter, MessageEvent
from relaydesk.news.models import NewsSource
from relaydesk.reminders.models import Reminder, ReminderRun
from relaydesk.voicebot.models import VoiceArchive, VoiceConversation, VoiceEvaluation, VoiceSyncRun

__all__ = [
    "ApiToken",
    "Assistant",
    "AssistantSession",
    "Attachment",
    "AuditEntry",
    "AutomationRun",
    "Batch",
    "Contact",
    "Conversation",
    "ConversationSummary",
    "Job",
    "LLMUsage",
    "LoginFailure",
    "MediaLink",
    "Message",
    "MessageCounter",
    "MessageEvent",
    "NewsRecipient",
    "NewsSource",
    "PhoneNumber",
    "Recipient",
    "Reminder",
    "ReminderRun",
    "SendPacer",
    "Setting",
    "User",
    "VoiceArchive",
    "VoiceConversation",
    "VoiceEvaluation",
    "VoiceSyncRun",
    "WebSession",
]
