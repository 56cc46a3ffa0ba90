"""What `batch-poller run` leaves out of its process on a SQLite configuration: modules other
commands or other libraries' extras need, which would only make the idle daemon larger."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from batch_poller.emulator.server import Endpoints
from tests.processes import write_config

# rich and pygments: structlog's coloured tracebacks (the CLI's tables import rich themselves);
# aioboto3, boto3 and s3transfer: resources and S3 transfers, which the daemon does not use.
NOT_IMPORTED = ("rich", "pygments", "aioboto3", "boto3", "s3transfer")

# The command in this process, so that its modules can be listed once it is done.
SCRIPT = """
import json, sys
from batch_poller.entry import main
sys.argv = ["batch-poller", "--config", sys.argv[1], "run", "--once"]
code = main()
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def test_run_imports_neither_rich_nor_aioboto3(endpoints: Endpoints, tmp_path: Path) -> None:
    config = write_config(tmp_path, endpoints)

    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(config)], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.splitlines()[-1])
    assert outcome["code"] == 0, result.stderr
    imported = {name.partition(".")[0] for name in outcome["modules"]}
    assert "botocore" in imported and "structlog" in imported  # the pass did run
    assert imported.isdisjoint(NOT_IMPORTED), sorted(imported & set(NOT_IMPORTED))
    # A SQLite configuration never loads the PostgreSQL dialect nor its driver.
    postgres = [m for m in outcome["modules"] if "postgresql" in m or m.startswith("asyncpg")]
    assert postgres == []
