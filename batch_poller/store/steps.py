"""The domain's next-step rule (domain.STEP_RULES) as SQL, so that the queries select exactly
the jobs that `next_step` names, and a transition can require that its job is still at the
step that made it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, not_, or_, true

from batch_poller.domain import STEP_RULES, JobStatus, Step, StepRule
from batch_poller.store.tables import bedrock_batch_jobs as _JOBS

_C = _JOBS.c


def _is_set(column: ColumnElement[object], wanted: bool) -> ColumnElement[bool]:
    return column.is_not(None) if wanted else column.is_(None)


def _matches(rule: StepRule) -> ColumnElement[bool]:
    """Never NULL: NOT of it must be its opposite for the first-match rule below."""
    parts: list[ColumnElement[bool]] = [_C.status.in_(sorted(s.value for s in rule.statuses))]
    if rule.bedrock_statuses is not None:
        parts.append(_C.bedrock_status.is_not(None))
        parts.append(_C.bedrock_status.in_(sorted(s.value for s in rule.bedrock_statuses)))
    if rule.results_stored is not None:
        parts.append(_is_set(_C.results_fetched_at, rule.results_stored))
    if rule.cleaned is not None:
        parts.append(_is_set(_C.cleanup_completed_at, rule.cleaned))
    if rule.group_done is not None:
        done = or_(_C.group_name.is_(None), _C.group_compiled_at.is_not(None))
        parts.append(done if rule.group_done else not_(done))
    return and_(*parts)


def needs(step: Step) -> ColumnElement[bool]:
    """`next_step(job) is step`: the step's rule matches and no earlier rule does."""
    earlier: list[ColumnElement[bool]] = []
    for rule in STEP_RULES:
        if rule.step is step:
            return and_(*earlier, _matches(rule))
        earlier.append(not_(_matches(rule)))
    raise ValueError(f"no rule for {step}")


def needs_any(steps: Iterable[Step]) -> ColumnElement[bool]:
    return or_(*(needs(step) for step in steps))


def due(
    step: Step, now: datetime, *, check_interval_seconds: float, retry_failed_fetch: bool
) -> ColumnElement[bool]:
    """`domain.is_due` for a job that needs `step`."""
    if step is Step.CHECK:
        if check_interval_seconds <= 0:
            return true()
        cutoff = now - timedelta(seconds=check_interval_seconds)
        return or_(_C.last_checked_at.is_(None), _C.last_checked_at <= cutoff)
    if step is Step.FETCH and not retry_failed_fetch:
        return or_(
            _C.status != JobStatus.RESULT_FETCH_FAILED.value,
            and_(_C.fetch_retry_at.is_not(None), _C.fetch_retry_at <= now),
        )
    return true()


def due_work(
    steps: Iterable[Step],
    now: datetime,
    *,
    check_interval_seconds: float,
    retry_failed_fetch: bool = False,
) -> ColumnElement[bool]:
    """Jobs that need one of `steps` and may take it now."""
    return or_(
        *(
            and_(
                needs(step),
                due(
                    step,
                    now,
                    check_interval_seconds=check_interval_seconds,
                    retry_failed_fetch=retry_failed_fetch,
                ),
            )
            for step in steps
        )
    )


def urgency() -> ColumnElement[int]:
    """Stored results waiting first, then folders to clean, then checks."""
    return case((needs(Step.FETCH), 0), (needs(Step.CLEAN), 1), else_=2)
