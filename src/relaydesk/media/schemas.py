"""What the media API answers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class UploadOut(BaseModel):
    """A stored upload and the public address Twilio fetches it from."""

    url: str
    content_type: str
    size: int
    filename: str | None
    expires_at: datetime
