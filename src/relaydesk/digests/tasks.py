"""Background jobs of the news digests."""

from __future__ import annotations

from relaydesk.core.tasks import BULK, periodic
from relaydesk.digests import service


@periodic("news.digests", minutes="*", queue=BULK)
def send_due_digests() -> None:
    """Send the digests owed now, once each (state is in the database: restarts are safe)."""
    service.run_due()
