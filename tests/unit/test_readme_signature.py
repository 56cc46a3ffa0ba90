"""The signature check README gives receivers, run as written against what the daemon sends."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batch_poller.hooks.event import HookEvent
from batch_poller.hooks.signing import signed_headers

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_check() -> Callable[..., bool]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    [snippet] = [block for block in blocks if "def verified" in block]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    check: Callable[..., bool] = namespace["verified"]
    return check


def test_the_readme_snippet_accepts_what_the_daemon_signs_and_nothing_else() -> None:
    verified = _readme_check()
    event = HookEvent("evt_1", "group.completed", b'{"id": "evt_1"}', {})
    now = int(time.time())
    headers = signed_headers("s3cret", event, now)

    assert verified(b"s3cret", headers, event.body)
    assert not verified(b"other", headers, event.body)
    assert not verified(b"s3cret", headers, event.body + b" ")
    assert not verified(b"s3cret", {**headers, "Batch-Poller-Event-Id": "evt_2"}, event.body)
    stale = signed_headers("s3cret", event, now - 3600)
    assert not verified(b"s3cret", stale, event.body)
    rotated = {**headers, "Batch-Poller-Signature": "v1=00, " + headers["Batch-Poller-Signature"]}
    assert verified(b"s3cret", rotated, event.body)
