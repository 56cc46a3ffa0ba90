"""Runs `batch-poller emulate` as a child process: what test suites (ours and users') start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass

from batch_poller.emulator.server import Endpoints


@dataclass
class EmulatorProcess:
    process: subprocess.Popen[str]
    endpoints: Endpoints

    @classmethod
    def start(cls, *extra_args: str, timeout: float = 30.0) -> EmulatorProcess:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "batch_poller",
                "--log-level",
                "WARNING",
                "emulate",
                *extra_args,
            ],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        found: dict[str, str] = {}
        assert process.stdout is not None
        while len(found) < 2:
            line = process.stdout.readline()
            if not line:
                process.kill()
                raise RuntimeError(f"the emulator exited before announcing its endpoints: {found}")
            name, _, value = line.strip().partition("=")
            if name in ("BEDROCK_ENDPOINT_URL", "S3_ENDPOINT_URL"):
                found[name] = value
        return cls(process, Endpoints(found["BEDROCK_ENDPOINT_URL"], found["S3_ENDPOINT_URL"]))

    def stop(self, timeout: float = 10.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
