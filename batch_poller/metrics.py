"""Prometheus metrics: one registry per daemon, fed by the parts that do the work."""

from __future__ import annotations

import platform

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    generate_latest,
)

from batch_poller import __version__
from batch_poller.domain import JobStatus

# Seconds from a job's end at Bedrock to its results stored: minutes to hours matter here.
_LATENCY_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs = Gauge("batch_poller_jobs", "Tracked jobs by status", ["status"], registry=r)
        self.passes = Counter("batch_poller_passes", "Passes run", registry=r)
        self.pass_seconds = Histogram(
            "batch_poller_pass_duration_seconds", "Duration of a pass", registry=r
        )
        self.aws_calls = Counter(
            "batch_poller_aws_calls",
            "AWS calls by operation and outcome (ok, throttled, transient, permanent)",
            ["operation", "outcome"],
            registry=r,
        )
        self.records = Counter(
            "batch_poller_records_ingested", "Result records stored", ["outcome"], registry=r
        )
        self.fetch_failures = Counter(
            "batch_poller_result_fetch_failures", "Failed attempts at fetching results", registry=r
        )
        self.cleanups = Counter(
            "batch_poller_cleanups", "Cleanups by outcome (done, failed)", ["outcome"], registry=r
        )
        self.bytes_freed = Counter(
            "batch_poller_bytes_freed", "Bytes deleted from S3 by cleanups", registry=r
        )
        self.completion_to_stored = Histogram(
            "batch_poller_completion_to_stored_seconds",
            "From a job's end at Bedrock to its results stored, with events on or polling alone",
            ["via"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.leases_lost = Counter(
            "batch_poller_leases_lost",
            "Jobs this process stopped working on because another took its lease over",
            registry=r,
        )
        self.hook_deliveries = Counter(
            "batch_poller_hook_deliveries",
            "Attempts at delivering events to hooks, by hook and result (delivered, retried, dead)",
            ["hook", "result"],
            registry=r,
        )
        self.deliveries = Gauge(
            "batch_poller_hook_deliveries_by_state",
            "Deliveries in the outbox by hook and state (pending, delivered, dead)",
            ["hook", "state"],
            registry=r,
        )
        self.events = Counter(
            "batch_poller_events",
            "Bedrock state-change events from the queue: accepted, or ignored by reason",
            ["result"],
            registry=r,
        )
        self.events_receiving = Gauge(
            "batch_poller_events_receiving",
            "1 while the event consumer's receives work, 0 while they fail (absent: events off)",
            ["queue"],
            registry=r,
        )
        self.last_successful_pass = Gauge(
            "batch_poller_last_successful_pass_timestamp_seconds",
            "When the last pass that ran to its end ended, as a Unix time",
            registry=r,
        )
        self.pass_interval = Gauge(
            "batch_poller_pass_interval_seconds",
            "The time between passes now ([poller] interval, or the events' fallback interval)",
            registry=r,
        )
        # The process's own CPU, memory and open files (process_*), as every exporter has them.
        ProcessCollector(registry=r)
        self.replica = Info(
            "batch_poller_replica", "This process among those sharing the database", registry=r
        )
        build = Info("batch_poller_build", "Version of the running daemon", registry=r)
        build.info({"version": __version__, "python": platform.python_version()})

    def aws_call(self, operation: str, outcome: str) -> None:
        self.aws_calls.labels(operation, outcome).inc()

    def set_job_counts(self, counts: dict[JobStatus, int]) -> None:
        for status, count in counts.items():
            self.jobs.labels(status.value).set(count)

    def set_delivery_counts(self, counts: dict[tuple[str, str], int]) -> None:
        self.deliveries.clear()
        for (hook, state), count in counts.items():
            self.deliveries.labels(hook, state).set(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
