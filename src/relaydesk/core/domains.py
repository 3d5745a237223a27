"""The installed domains: the one list that routers, panel tabs, tasks and tables come from.

Like Django's INSTALLED_APPS, it names modules without importing them, so the core can
load task modules and tables without depending on the domains above it. A new domain
plugs in by adding one `Domain` here (in dependency order: a domain comes after the ones
it uses); nothing else needs a central edit.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType

from relaydesk.core.i18n import N_


@dataclass(frozen=True)
class Tab:
    """A section in the panel's navigation."""

    key: str  # what a page passes as `tab` to be the current one
    href: str
    label: str
    role: str = "viewer"  # the least role that sees it
    mode: str | None = None  # shown only in this environment mode ("sandbox")
    # Navigation follows domain order; a lower `order` moves a tab ahead of it (the inbox,
    # a domain above messaging, is still the first tab).
    order: int = 100


@dataclass(frozen=True)
class Domain:
    """One domain package and what it contributes; module names are relative to it."""

    package: str
    api: tuple[str, ...] = ()  # modules whose `router` serves the REST API
    views: tuple[str, ...] = ()  # modules whose `router` serves panel pages
    tasks: tuple[str, ...] = ()  # modules that register tasks, periodic sweeps, handlers
    # Its tasks register follow-up work for each stored inbound message (in this order).
    inbound: bool = False
    models: str | None = "models"
    tabs: tuple[Tab, ...] = field(default=())

    @property
    def name(self) -> str:
        """The domain's short name (its package's last part)."""
        return self.package.rsplit(".", 1)[-1]

    def modules(self, kind: str) -> list[str]:
        """Full names of this domain's api, views or tasks modules."""
        return [f"{self.package}.{m}" if m else self.package for m in getattr(self, kind)]


DOMAINS: tuple[Domain, ...] = (
    Domain("relaydesk.core", models="models", tasks=()),
    Domain("relaydesk.auth", api=("api",)),
    Domain("relaydesk.jobs", api=("api",), tasks=("tasks",)),
    Domain("relaydesk.contacts"),
    Domain(
        "relaydesk.messaging",
        api=("api", "search_api"),
        views=("views", "search_views"),
        tasks=("tasks",),
        tabs=(Tab("messages", "/messages", N_("Messages")),),
    ),
    Domain(
        "relaydesk.inbox",
        api=(
            "notes_api",
            "labels_api",
            "canned_api",
            "assignment_api",
            "hours_api",
            "contacts_api",
        ),
        views=(
            "views",
            "notes_views",
            "labels_views",
            "canned_views",
            "assignment_views",
            "hours_views",
            "profile_views",
        ),
        tabs=(Tab("inbox", "/inbox", N_("Inbox"), order=0),),
    ),
    Domain("relaydesk.media", api=("api",), views=("views",), tasks=("tasks",), inbound=True),
    # Saved contact filters (campaigns to a segment) and contacts in and out as CSV.
    Domain(
        "relaydesk.segments",
        api=("api", "contacts_csv_api"),
        views=("views",),
        tabs=(Tab("contacts", "/contacts", N_("Contacts")),),
    ),
    Domain(
        "relaydesk.automation",
        api=("api", "tools_api"),
        views=("views",),
        tasks=("tasks",),
        inbound=True,
        tabs=(
            Tab("auto_reply", "/auto-reply", N_("Auto-reply")),
            Tab("ai", "/ai", N_("AI")),
            Tab("assistants", "/assistants", N_("Assistants")),
        ),
    ),
    Domain(
        "relaydesk.reminders",
        api=("api",),
        views=("views",),
        tasks=("tasks",),
        tabs=(Tab("reminders", "/reminders", N_("Reminders")),),
    ),
    Domain(
        "relaydesk.campaigns",
        api=("api",),
        views=("views",),
        tasks=("tasks",),
        tabs=(Tab("multi_sms", "/multi-sms", N_("Multi-SMS")),),
    ),
    Domain("relaydesk.indexes", api=("api",), views=("views",), models=None),
    Domain("relaydesk.documents", api=("api",), views=("views",)),
    Domain(
        "relaydesk.news",
        api=("api",),
        views=("views",),
        tasks=("tasks",),
        tabs=(Tab("news", "/news", N_("News")),),
    ),
    Domain("relaydesk.digests", api=("api",), views=("views",), tasks=("tasks",)),
    Domain(
        "relaydesk.voicebot",
        api=("api",),
        views=("views",),
        tasks=("tasks", "sync"),  # sync registers the sync job runners
        tabs=(Tab("voicebot", "/voicebot", N_("Voice bot")),),
    ),
    # Outgoing webhooks: endpoints, signed deliveries, retries (events come from the core).
    Domain(
        "relaydesk.webhooks_out",
        api=("api",),
        views=("views",),
        tasks=("tasks",),
        tabs=(Tab("webhooks", "/webhooks", N_("Webhooks"), "admin"),),
    ),
    # The Twilio emulator mounts its own routes (only in sandbox mode); its tab is here.
    Domain(
        "relaydesk.channels.sandbox",
        models=None,
        tabs=(Tab("sandbox", "/sandbox-phone", N_("Sandbox phone"), "operator", "sandbox"),),
    ),
    Domain(
        "relaydesk.admin",
        api=("api", "twilio_api"),
        views=("views",),
        models=None,
        tabs=(
            Tab("settings", "/settings", N_("Settings"), "admin"),
            Tab("users", "/users", N_("Users and tokens"), "admin"),
            Tab("audit", "/audit", N_("Audit log"), "admin"),
        ),
    ),
    # Housekeeping that belongs to no domain: statistics and expired sessions.
    Domain("relaydesk.maintenance", tasks=("",), models=None),
    # Scheduled backups of the whole installation (BACKUP_DIR).
    Domain("relaydesk.backups", tasks=("tasks",), models=None),
)


def load(kind: str) -> Iterator[ModuleType]:
    """Import every domain's modules of one kind ("api", "views", "tasks"), in order."""
    for domain in DOMAINS:
        for name in domain.modules(kind):
            yield importlib.import_module(name)


def load_models() -> None:
    """Import every table, so the metadata (and Alembic, and flush order) sees them all."""
    for domain in DOMAINS:
        if domain.models:
            importlib.import_module(f"{domain.package}.{domain.models}")


def task_modules() -> list[str]:
    """Every module that registers tasks, in domain order."""
    return [name for domain in DOMAINS for name in domain.modules("tasks")]


def inbound_modules() -> list[str]:
    """Modules that register inbound handlers, in the order their handlers run."""
    return [name for domain in DOMAINS if domain.inbound for name in domain.modules("tasks")]


def tabs() -> list[Tab]:
    """The panel's sections in navigation order."""
    return sorted((tab for domain in DOMAINS for tab in domain.tabs), key=lambda tab: tab.order)
