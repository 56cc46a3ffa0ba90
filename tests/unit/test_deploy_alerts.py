"""deploy/prometheus/alerts.yml: valid rules over metrics the daemon exports."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from batch_poller.metrics import Metrics

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"


def _exported() -> set[str]:
    text = Metrics().render().decode()
    return set(re.findall(r"^# HELP (\S+)", text, re.MULTILINE))


def test_every_alert_reads_metrics_the_daemon_exports() -> None:
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    exported = _exported()

    assert {rule["alert"] for rule in rules} >= {
        "BatchPollerNoPass",
        "BatchPollerResultFetchFailed",
        "BatchPollerCleanupsFailing",
        "BatchPollerEventsStopped",
    }
    for rule in rules:
        assert rule["expr"] and rule["labels"]["severity"] in ("page", "ticket")
        for name in re.findall(r"\bbatch_poller_\w+", rule["expr"]):
            assert name in exported, f"{rule['alert']}: {name} is not exported"


def test_the_process_s_own_metrics_are_exported() -> None:
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total"} <= _exported()
