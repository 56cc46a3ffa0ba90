"""Text as the store keeps it, the same on both databases."""

from __future__ import annotations

import hashlib
from typing import Any

from batch_poller.rows import RecordRow

# Text that may hold a NUL character; JSON text (model_output, model_input) is escaped already.
_TEXT_FIELDS = ("error_code", "error_message", "raw_text")

# PostgreSQL indexes at most ~2,700 bytes of a key; an id is kept whole up to this many.
MAX_RECORD_ID_BYTES = 1024


def stored_text(value: str) -> str:
    """Text as the store keeps it. PostgreSQL text cannot hold NUL characters (SQLite can):
    the same data in both."""
    return value.replace("\x00", "\ufffd")


def stored_record_id(record_id: str) -> str:
    """A record id as the store keeps it: NUL replaced, and an id too long for an index cut
    to its start and a digest of the whole, the same wherever it is met (output or input)."""
    text = stored_text(record_id)
    # A character is at most 4 bytes: a short id needs no encoding to be known short enough.
    if len(text) <= MAX_RECORD_ID_BYTES // 4 or len(text.encode()) <= MAX_RECORD_ID_BYTES:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f"{text[:200]}...sha256:{digest}"


def stored_row(row: RecordRow) -> RecordRow:
    """The row as the store keeps it. Ids are compared after this, so an id is compared with
    itself as written."""
    # Checked inline: this runs for every record, and nearly every row needs no change.
    record_id = row.record_id
    if (
        len(record_id) <= MAX_RECORD_ID_BYTES // 4
        and "\x00" not in record_id
        and (row.error_code is None or "\x00" not in row.error_code)
        and (row.error_message is None or "\x00" not in row.error_message)
        and (row.raw_text is None or "\x00" not in row.raw_text)
    ):
        return row
    changes: dict[str, Any] = {
        name: stored_text(value)
        for name in _TEXT_FIELDS
        if (value := getattr(row, name)) is not None and "\x00" in value
    }
    if (stored_id := stored_record_id(record_id)) != record_id:
        changes["record_id"] = stored_id
    return row._replace(**changes) if changes else row
