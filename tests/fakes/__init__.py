"""Vendor fakes and other servers the tests talk to: small real HTTP servers on loopback.

- loopback: LoopbackServer (the ground of the others), RecordingServer (a service that
  must not be reached), AnsweringServer (answers GETs from a function)
- openai: FakeOpenAI and its `openai_fake` fixture
- elevenlabs: FakeElevenLabs, checked against the ElevenLabs OpenAPI document
- news_site: Site, a web site whose feeds, pages and robots.txt a test writes
- twilio_callbacks: Receiver, where the Twilio emulator sends webhooks and callbacks

The names most tests use are importable from `tests.fakes` itself.
"""

from tests.fakes.loopback import AnsweringServer, LoopbackServer, RecordingServer
from tests.fakes.openai import FakeOpenAI, openai_fake

__all__ = ["AnsweringServer", "FakeOpenAI", "LoopbackServer", "RecordingServer", "openai_fake"]
