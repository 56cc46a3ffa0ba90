"""A `batch-poller run` process that makes its slow imports at once and starts when told to.

Importing the daemon takes one to four seconds on a busy two-core machine, most of a kill
campaign's iteration. A warm process imports while the iteration's jobs are made, then runs
`python -m batch_poller --config FILE run` itself (the same `__main__`, by runpy) on `go()`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.processes import Daemon

WARM_START = """
import runpy, sys
import batch_poller.cli, batch_poller.daemon  # the slow imports, before the word to start
if sys.stdin.readline().strip() != "go":
    raise SystemExit(0)  # stdin closed without a word: the test is over
sys.argv[0] = "batch_poller"
runpy.run_module("batch_poller", run_name="__main__", alter_sys=True)
"""


class WarmDaemon(Daemon):
    def __init__(self, config: Path) -> None:
        # Daemon's own constructor starts the process at once; this one waits for go().
        self.log_path = config.parent / f"daemon-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-c", WARM_START, "--config", str(config), "run"],
            stdin=subprocess.PIPE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")
        self.process.stdin.close()
