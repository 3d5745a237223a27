"""What the documents API answers."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class DocumentOut(BaseModel):
    """A document in the knowledge base (its text is in the index, not here)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    category: str
    filename: str
    kind: str = Field(description="pdf, docx, odt, xlsx, csv, txt, md or html")
    size: int = Field(description="bytes uploaded")
    sha256: str
    parts: int = Field(description="pages, rows or sections with text")
    characters: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class DocumentSaved(BaseModel):
    """An upload's answer: the document, and the index update it queued."""

    document: DocumentOut
    job_id: int | None = Field(
        description="the index update to follow at /api/jobs/{job_id}; null while another "
        "build runs (build again when it ends)"
    )
