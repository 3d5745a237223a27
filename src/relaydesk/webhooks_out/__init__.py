"""Outgoing webhooks: endpoints admins register, signed deliveries, retries and replays.

Events are written by the code that makes each change (`relaydesk.core.events.emit`);
this domain manages the endpoints (api, views), sends the deliveries (sender, tasks)
and keeps every attempt.
"""
