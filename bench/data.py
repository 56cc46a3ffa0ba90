"""Generated Bedrock output: `.jsonl.out` lines of a chosen record size, in the Nova shape."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path


def output_line(index: int, record_bytes: int, rng: random.Random) -> bytes:
    """One success line of about record_bytes bytes; most of it is the echoed modelInput."""
    words = " ".join(rng.choice(WORDS) for _ in range(12))
    line = {
        "recordId": f"REC{index:010d}",
        "modelInput": {
            "schemaVersion": "messages-v1",
            "messages": [{"role": "user", "content": [{"text": ""}]}],
        },
        "modelOutput": {
            "output": {"message": {"role": "assistant", "content": [{"text": words}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 120, "outputTokens": 12, "totalTokens": 132},
        },
    }
    base = len(json.dumps(line, separators=(",", ":")))
    padding = max(0, record_bytes - base - 1)
    text = (words + " ") * (padding // (len(words) + 1) + 1)
    line["modelInput"]["messages"][0]["content"][0]["text"] = text[:padding]  # type: ignore[index]
    return json.dumps(line, separators=(",", ":")).encode()


def write_output(path: Path, total_bytes: int, record_bytes: int) -> int:
    """Writes about total_bytes of lines to path; returns how many records it holds."""
    rng = random.Random(7)
    written = count = 0
    with path.open("wb") as out:
        for line in _lines(record_bytes, rng):
            out.write(line + b"\n")
            written += len(line) + 1
            count += 1
            if written >= total_bytes:
                return count
    return count


def _lines(record_bytes: int, rng: random.Random) -> Iterator[bytes]:
    index = 0
    while True:
        yield output_line(index, record_bytes, rng)
        index += 1


WORDS = (
    "ticket",
    "customer",
    "refund",
    "order",
    "delivery",
    "late",
    "damaged",
    "replaced",
    "account",
    "billing",
    "invoice",
    "password",
    "reset",
    "shipping",
    "address",
    "warranty",
    "support",
    "escalated",
    "resolved",
    "pending",
    "review",
)
