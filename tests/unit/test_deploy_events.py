"""deploy/aws: the CloudFormation template passes cfn-lint, and it and the CLI script route
exactly the events the daemon reads as hints."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from batch_poller.events.hints import DETAIL_TYPE, SOURCE

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "aws"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"


class _Tagged(yaml.SafeLoader):
    """CloudFormation's short forms (!Ref, !GetAtt, !Sub) read as plain values."""


_Tagged.add_multi_constructor(
    "!",
    lambda loader, tag, node: (
        loader.construct_scalar(node)
        if isinstance(node, yaml.ScalarNode)
        else loader.construct_sequence(node)
    ),
)


def _template() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load((DEPLOY / "events.yaml").read_text(), Loader=_Tagged)
    return loaded


def test_the_rule_routes_bedrocks_batch_state_changes_to_the_queue() -> None:
    resources = _template()["Resources"]
    rule = resources["BatchStateChangeRule"]["Properties"]
    assert rule["EventPattern"] == {"source": [SOURCE], "detail-type": [DETAIL_TYPE]}
    policy = resources["EventsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert policy["Principal"] == {"Service": "events.amazonaws.com"}
    assert policy["Action"] == "sqs:SendMessage"
    daemon = resources["DaemonPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    actions = {
        a for s in daemon for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "bedrock:GetModelInvocationJob"} <= actions
    assert not any(a.endswith(":*") or a == "*" for a in actions)


def test_the_cli_script_routes_the_same_events() -> None:
    script = (DEPLOY / "events-cli.sh").read_text()
    [pattern] = re.findall(r"--event-pattern '([^']+)'", script)
    assert json.loads(pattern) == {"source": [SOURCE], "detail-type": [DETAIL_TYPE]}
    assert subprocess.run(["sh", "-n", str(DEPLOY / "events-cli.sh")]).returncode == 0


@pytest.mark.skipif(not CFN_LINT.exists() and not shutil.which("cfn-lint"), reason="no cfn-lint")
def test_the_template_passes_cfn_lint() -> None:
    lint = str(CFN_LINT) if CFN_LINT.exists() else "cfn-lint"
    result = subprocess.run([lint, str(DEPLOY / "events.yaml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
