"""The outbox: every job settle and group compile is written as an event in the transaction
that made it, with one delivery row for each hook that wants it. The delivery task
(hooks/delivery.py) sends them from here, so a crash between the commit and the send loses
nothing (at least once), and a receiver that is slow or down holds up only its own deliveries.

On PostgreSQL the same transaction also sends `NOTIFY batch_poller, '<event>'`, so that an
application on the database can LISTEN instead of polling."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

import orjson
from sqlalchemy import and_, func, insert, or_, select, text, true, update
from sqlalchemy.ext.asyncio import AsyncConnection

from batch_poller.store.errors import store_operation
from batch_poller.store.guards import Tenancy
from batch_poller.store.tables import events as _EVENTS
from batch_poller.store.tables import hook_deliveries as _DELIVERIES
from batch_poller.store.text import stored_text
from batch_poller.store.transactions import Transactions

NOTIFY_CHANNEL = "batch_poller"
# PostgreSQL refuses a NOTIFY payload of 8000 bytes or more: a bigger event is announced by its
# id and type, to be read from the events table.
_NOTIFY_LIMIT = 7900
_D = _DELIVERIES.c


NO_LONGER_CONFIGURED = (
    "its hook is no longer configured: `hooks retry DELIVERY --to NAME` sends it to one that is"
)


class EventType(StrEnum):
    JOB_SETTLED = "job.settled"  # a job's results are stored (COMPLETED, PARTIALLY_COMPLETED)
    JOB_FAILED = "job.failed"  # a job failed at Bedrock, or Bedrock refused to describe it
    GROUP_COMPLETED = "group.completed"  # a group is compiled, whatever its status


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"  # gave up: `hooks retry` sends it again


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to write: its type, what it says, and the job or group it is about."""

    type: EventType
    document: Mapping[str, Any]
    batch_job_arn: str | None = None
    group_name: str | None = None


@dataclass(frozen=True, slots=True)
class HookRoute:
    """A configured hook, as the outbox knows it: its name and the event types it takes."""

    name: str
    events: frozenset[str]

    def wants(self, event_type: str) -> bool:
        return "*" in self.events or event_type in self.events


class ConfiguredHook(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def events(self) -> Sequence[str]: ...


def routes_of(hooks: Iterable[ConfiguredHook]) -> tuple[HookRoute, ...]:
    return tuple(HookRoute(hook.name, frozenset(hook.events)) for hook in hooks)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event's delivery to one hook."""

    id: int
    hook: str
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    delivered_at: datetime | None
    event_id: str
    type: str
    batch_job_arn: str | None
    group_name: str | None
    payload: str
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "delivery": self.id,
            "hook": self.hook,
            "state": self.state.value,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.isoformat(),
            "last_error": self.last_error,
            "event_id": self.event_id,
            "type": self.type,
            "batch_job_arn": self.batch_job_arn,
            "group": self.group_name,
            "created_at": self.created_at.isoformat(),
        }


_DELIVERY_COLUMNS = (
    _D.id,
    _D.hook,
    _D.state,
    _D.attempts,
    _D.next_attempt_at,
    _D.last_error,
    _D.delivered_at,
    _EVENTS.c.event_id,
    _EVENTS.c.type,
    _EVENTS.c.batch_job_arn,
    _EVENTS.c.group_name,
    _EVENTS.c.payload,
    _EVENTS.c.created_at,
)


def _delivery(row: Mapping[Any, Any]) -> Delivery:
    values = dict(row)
    values["state"] = DeliveryState(values["state"])
    return Delivery(**values)


class Outbox:
    def __init__(self, tx: Transactions, tenancy: Tenancy) -> None:
        self.tx = tx
        self.tenancy = tenancy
        # The configured hooks: set at start and on reload (app.py).
        self.routes: tuple[HookRoute, ...] = ()
        # Set after a transaction of this process committed an event: the delivery task wakes.
        self.written = asyncio.Event()

    # -- writing, inside another write's transaction ---------------------------------------

    async def emit(
        self,
        conn: AsyncConnection,
        event_type: EventType,
        document: Mapping[str, Any],
        now: datetime,
        *,
        batch_job_arn: str | None = None,
        group_name: str | None = None,
    ) -> str:
        """Writes the event, its deliveries and (PostgreSQL) its NOTIFY in the caller's
        transaction; returns its id, the same on every attempt to deliver it."""
        event = NewEvent(event_type, document, batch_job_arn, group_name)
        return (await self.emit_many(conn, [event], now))[0]

    async def emit_many(
        self, conn: AsyncConnection, events: Sequence[NewEvent], now: datetime
    ) -> list[str]:
        """Writes the events, their deliveries and (PostgreSQL) their NOTIFYs in the caller's
        transaction, one statement for each of the three however many events there are;
        returns their ids, in order."""
        if not events:
            return []
        rows: list[dict[str, Any]] = []
        notes: list[str] = []  # what NOTIFY says of each (PostgreSQL)
        for event in events:
            event_id = f"evt_{uuid.uuid4().hex}"
            body = orjson.dumps(
                {
                    "id": event_id,
                    "type": event.type.value,
                    "created_at": now.isoformat(),
                    **event.document,
                }
            ).decode()
            rows.append(
                {
                    "event_id": event_id,
                    "type": event.type.value,
                    "batch_job_arn": event.batch_job_arn,
                    "group_name": event.group_name,
                    "payload": body,
                    "created_at": now,
                }
            )
            short = len(body.encode()) < _NOTIFY_LIMIT
            notes.append(body if short else _short(event_id, event.type))
        # Each event's key found by its id: the rows of a multi-row INSERT may come back in
        # any order.
        written = await conn.execute(
            insert(_EVENTS).returning(_EVENTS.c.event_id, _EVENTS.c.id), rows
        )
        keys: dict[str, int] = {event_id: key for event_id, key in written}
        deliveries = [
            {
                "event": keys[row["event_id"]],
                "hook": route.name,
                "state": DeliveryState.PENDING.value,
                "next_attempt_at": now,
                "updated_at": now,
            }
            for row, event in zip(rows, events, strict=True)
            for route in self.routes
            if route.wants(event.type.value)
        ]
        if deliveries:
            await conn.execute(insert(_DELIVERIES), deliveries)
        if conn.dialect.name == "postgresql":
            # In the order of the array: listeners get the events as they were written.
            await conn.execute(
                text("SELECT pg_notify(:channel, note) FROM unnest(CAST(:notes AS TEXT[])) note"),
                {"channel": NOTIFY_CHANNEL, "notes": notes},
            )
        return [row["event_id"] for row in rows]

    def announce(self) -> None:
        """After the commit of a transaction that emitted: the delivery task looks now."""
        self.written.set()

    # -- the delivery task's side ----------------------------------------------------------

    @store_operation("claim deliveries")
    async def claim(self, hook: str, now: datetime, limit: int, lease: timedelta) -> list[Delivery]:
        """Up to `limit` due pending deliveries of `hook` nobody else holds, leased to this
        process for `lease`, oldest first."""
        owner = self.tenancy.owner
        pick = (
            select(_D.id)
            .where(_D.hook == hook, _D.state == DeliveryState.PENDING.value)
            .where(_D.next_attempt_at <= now)
            .where(or_(_D.claimed_until.is_(None), _D.claimed_until <= now, _D.claimed_by == owner))
            .order_by(_D.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("picked")
        )
        stmt = (
            update(_DELIVERIES)
            .where(_D.id.in_(select(pick.c.id)))
            .values(claimed_by=owner, claimed_until=now + lease, updated_at=now)
            .returning(_D.id)
        )

        async def write(conn: AsyncConnection) -> list[Delivery]:
            ids = list((await conn.execute(stmt)).scalars())
            if not ids:
                return []
            return await _read(conn, _D.id.in_(ids))

        return await self.tx.write(write)

    @store_operation("record a delivery")
    async def delivered(self, delivery: int, now: datetime) -> bool:
        """Marks it delivered; False when this process no longer held it (sent twice, then:
        receivers deduplicate by the event id)."""
        return await self._finish(
            delivery,
            now,
            {
                "state": DeliveryState.DELIVERED.value,
                "attempts": _D.attempts + 1,
                "delivered_at": now,
                "last_error": None,
            },
        )

    @store_operation("record a failed delivery")
    async def failed(
        self, delivery: int, error: str, now: datetime, retry_at: datetime | None
    ) -> bool:
        """One more failed attempt: tried again at `retry_at`, or dead when None."""
        detail = stored_text(error)[:2000]
        values: dict[str, Any] = {"attempts": _D.attempts + 1, "last_error": detail}
        if retry_at is None:
            values["state"] = DeliveryState.DEAD.value
        else:
            values["next_attempt_at"] = retry_at
        return await self._finish(delivery, now, values)

    async def _finish(self, delivery: int, now: datetime, values: dict[str, Any]) -> bool:
        stmt = (
            update(_DELIVERIES)
            .where(_D.id == delivery, _D.claimed_by == self.tenancy.owner)
            .where(_D.state == DeliveryState.PENDING.value)
            .values(**values, claimed_by=None, claimed_until=None, updated_at=now)
            .returning(_D.id)
        )

        async def write(conn: AsyncConnection) -> bool:
            return (await conn.execute(stmt)).first() is not None

        return await self.tx.write(write)

    @store_operation("find the next delivery")
    async def next_due(self, hooks: Collection[str]) -> datetime | None:
        """When the earliest pending delivery of these hooks falls due (None: none pending)."""
        if not hooks:
            return None
        query = select(func.min(_D.next_attempt_at)).where(
            _D.hook.in_(list(hooks)), _D.state == DeliveryState.PENDING.value
        )

        async def read(conn: AsyncConnection) -> datetime | None:
            value: datetime | None = (await conn.execute(query)).scalar_one_or_none()
            return value

        return await self.tx.read(read)

    # -- what operators read and do ----------------------------------------------------------

    @store_operation("list deliveries")
    async def deliveries(
        self, state: DeliveryState | None = None, *, hook: str | None = None, limit: int = 100
    ) -> list[Delivery]:
        conditions = []
        if state is not None:
            conditions.append(_D.state == state.value)
        if hook is not None:
            conditions.append(_D.hook == hook)

        async def read(conn: AsyncConnection) -> list[Delivery]:
            return await _read(conn, and_(true(), *conditions), limit=limit)

        return await self.tx.read(read)

    @store_operation("dead-letter deliveries of hooks gone")
    async def strand(self, configured: Collection[str], now: datetime) -> dict[str, int]:
        """Pending deliveries of hooks that are not configured (renamed or removed, by a
        reload) are dead-lettered, so that `hooks failed` shows them and `hooks retry --to`
        can send them to a hook that is; returns how many, by hook."""
        stmt = (
            update(_DELIVERIES)
            .where(_D.state == DeliveryState.PENDING.value, _D.hook.not_in(list(configured)))
            .values(
                state=DeliveryState.DEAD.value,
                last_error=NO_LONGER_CONFIGURED,
                claimed_by=None,
                claimed_until=None,
                updated_at=now,
            )
            .returning(_D.hook)
        )

        async def write(conn: AsyncConnection) -> dict[str, int]:
            counts: dict[str, int] = {}
            for hook in (await conn.execute(stmt)).scalars():
                counts[hook] = counts.get(hook, 0) + 1
            return counts

        return await self.tx.write(write)

    @store_operation("send dead letters again")
    async def retry_dead(
        self,
        now: datetime,
        ids: Sequence[int] | None = None,
        *,
        hooks: Collection[str] | None,
        to: str | None = None,
    ) -> int:
        """Dead deliveries (all, or those named; of these hooks, or of any when None) are
        pending again with a fresh budget, for the hook `to` when given (one that does not
        have that event already); returns how many."""
        stmt = update(_DELIVERIES).where(_D.state == DeliveryState.DEAD.value)
        if hooks is not None:
            stmt = stmt.where(_D.hook.in_(list(hooks)))
        if ids is not None:
            stmt = stmt.where(_D.id.in_(list(ids)))
        moved: dict[str, Any] = {}
        if to is not None:
            other = _DELIVERIES.alias("other")
            taken = select(other.c.id).where(other.c.event == _D.event, other.c.hook == to)
            stmt = stmt.where(~taken.exists())
            moved["hook"] = to
        stmt = stmt.values(
            state=DeliveryState.PENDING.value,
            attempts=0,
            next_attempt_at=now,
            claimed_by=None,
            claimed_until=None,
            updated_at=now,
            **moved,
        ).returning(_D.id)

        async def write(conn: AsyncConnection) -> int:
            return len((await conn.execute(stmt)).all())

        count = await self.tx.write(write)
        if count:
            self.announce()
        return count

    @store_operation("count deliveries")
    async def delivery_counts(self) -> dict[tuple[str, str], int]:
        """(hook, state) -> deliveries."""
        query = select(_D.hook, _D.state, func.count()).group_by(_D.hook, _D.state)

        async def read(conn: AsyncConnection) -> dict[tuple[str, str], int]:
            return {(hook, state): int(n) for hook, state, n in await conn.execute(query)}

        return await self.tx.read(read)

    @store_operation("read events")
    async def events(
        self, *, batch_job_arn: str | None = None, group_name: str | None = None
    ) -> list[dict[str, Any]]:
        """The events of a job or a group, oldest first, as they were sent."""
        query = select(_EVENTS.c.payload).order_by(_EVENTS.c.id)
        if batch_job_arn is not None:
            query = query.where(_EVENTS.c.batch_job_arn == batch_job_arn)
        if group_name is not None:
            query = query.where(_EVENTS.c.group_name == group_name)

        async def read(conn: AsyncConnection) -> list[dict[str, Any]]:
            return [orjson.loads(payload) for payload in (await conn.execute(query)).scalars()]

        return await self.tx.read(read)


async def _read(conn: AsyncConnection, condition: Any, limit: int | None = None) -> list[Delivery]:
    query = (
        select(*_DELIVERY_COLUMNS)
        .select_from(_DELIVERIES.join(_EVENTS, _EVENTS.c.id == _D.event))
        .where(condition)
        .order_by(_D.id)
    )
    if limit is not None:
        query = query.limit(limit)
    return [_delivery(row) for row in (await conn.execute(query)).mappings()]


def _short(event_id: str, event_type: EventType) -> str:
    return orjson.dumps({"id": event_id, "type": event_type.value, "truncated": True}).decode()
