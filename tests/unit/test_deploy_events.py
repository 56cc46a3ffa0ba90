"""deploy/aws: the CloudFormation template passes cfn-lint, and it and the CLI script route
exactly the events the daemon reads as hints; deploy/iam-policy.json, the template and the CLI
script grant the daemon the same actions on the same resources."""

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
IAM_POLICY = DEPLOY.parent / "iam-policy.json"
QUEUE_ARN = "arn:aws:sqs:REGION:ACCOUNT_ID:QUEUE_NAME"
# The template's and the CLI script's names for what iam-policy.json leaves to fill in.
TEMPLATE_NAMES = {
    "${AWS::Partition}": "aws",
    "${ResultsBucket}": "RESULTS_BUCKET",
    "${ManagedPrefix}": "MANAGED_PREFIX",
    "EventsQueue.Arn": QUEUE_ARN,
}
SCRIPT_NAMES = {
    "$PARTITION": "aws",
    "$BUCKET": "RESULTS_BUCKET",
    "$PREFIX": "MANAGED_PREFIX",
    "$QUEUE_ARN": QUEUE_ARN,
}


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


def _grants(statements: list[dict[str, Any]], names: dict[str, str]) -> list[Any]:
    """Each statement's effect, actions and resource, with the names filled in as the policy
    file's placeholders."""
    grants = []
    for statement in statements:
        actions = statement["Action"]
        resource = statement["Resource"]
        for name, placeholder in names.items():
            resource = resource.replace(name, placeholder)
        grants.append(
            (
                statement["Effect"],
                sorted([actions] if isinstance(actions, str) else actions),
                resource,
            )
        )
    return grants


def test_the_iam_policy_file_grants_what_the_template_grants() -> None:
    policy = json.loads(IAM_POLICY.read_text())
    template = _template()["Resources"]["DaemonPolicy"]["Properties"]["PolicyDocument"]

    assert policy["Version"] == template["Version"]
    assert [s["Sid"] for s in policy["Statement"]] == [s["Sid"] for s in template["Statement"]]
    assert _grants(policy["Statement"], {}) == _grants(template["Statement"], TEMPLATE_NAMES)


def test_the_cli_script_creates_the_same_daemon_policy() -> None:
    script = (DEPLOY / "events-cli.sh").read_text()
    [document] = re.findall(r"create-policy .*?<<JSON\n(.*?)\nJSON", script, re.DOTALL)
    for name, placeholder in SCRIPT_NAMES.items():
        document = document.replace(name, placeholder)

    created = json.loads(document)["Statement"]
    assert _grants(created, {}) == _grants(json.loads(IAM_POLICY.read_text())["Statement"], {})


def test_the_placeholders_of_the_iam_policy_file_are_explained() -> None:
    policy = IAM_POLICY.read_text()
    readme = (DEPLOY.parent / "README.md").read_text()
    for placeholder in ("RESULTS_BUCKET", "MANAGED_PREFIX", "REGION", "ACCOUNT_ID", "QUEUE_NAME"):
        assert placeholder in policy
        assert f"`{placeholder}`" in readme, placeholder
