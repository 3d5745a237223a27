"""relaydesk: a self-hosted messaging hub for Twilio SMS, MMS and WhatsApp."""

__version__ = "0.1.0"
