"""Dispatch: take a queued message to a carrier and record what the carrier said."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from pigeon.domain.errors import Fault, PermanentFailure, TemporaryFailure, Throttled
from pigeon.domain.messages import Message, MessageStatus, Part, StatusChange
from pigeon.domain.routing import (
    Candidate,
    Route,
    RouteContext,
    RoutePlan,
    RoutingTable,
    accepted_by,
    next_candidate,
)
from pigeon.ports import (
    Clock,
    Connector,
    EventRecord,
    IdFactory,
    Job,
    JobQueue,
    MessageChange,
    MessageStore,
    Mutation,
    SubmitResult,
    SubmitStarting,
)
from pigeon.services.completions import Completions
from pigeon.services.events import EventRecorder
from pigeon.services.worker import JobBatch
from pigeon.telemetry import SUBMIT_ERRORS

log = logging.getLogger(__name__)

S = MessageStatus
DISPATCHABLE = frozenset({S.QUEUED, S.SCHEDULED})

#: Prefetched messages kept at most (the runner claims far fewer at once).
PREFETCHED_KEPT = 4096

#: How long the messages of a dispatch batch wait together for a carrier's window slots
#: before each waits on its own (as ``submit`` does, up to the response timeout).
DEFERRED_WAIT = 5.0


class Router(Protocol):
    """Plans the connectors a message tries, in failover order, and learns from submits."""

    def plan(self, message: Message) -> RoutePlan: ...

    def connector(self, connector_id: str) -> Connector: ...

    def submitted(self, connector_id: str, message: Message, at: datetime) -> None: ...

    def submitted_many(self, connector_id: str, count: int, at: datetime) -> None: ...

    def failed(self, connector_id: str, code: str, at: datetime) -> None: ...


#: A one-candidate plan draws nothing; one generator serves every plan (making one per plan
#: cost more than the plan itself).
_NO_DRAWS = random.Random(0)  # noqa: S311 - never drawn from


class SandboxRouter:
    """The simplest routing: test traffic to the sandbox, live traffic to the default.

    A test key's messages never reach anything but ``sandbox``, whatever else is configured.
    """

    def __init__(self, default: Connector, sandbox: Connector) -> None:
        self._default = default
        self._sandbox = sandbox
        self._tables = {
            connector.id: RoutingTable([], Route(connector.id, (), (Candidate(connector.id),)))
            for connector in (default, sandbox)
        }

    def choose(self, message: Message) -> Connector:
        """The connector for ``message``."""
        return self._sandbox if message.is_test else self._default

    def plan(self, message: Message) -> RoutePlan:
        """A one-connector plan: the connector ``choose`` picks."""
        connector = self.choose(message)
        context = RouteContext.for_message(message, message.updated_at)
        return self._tables[connector.id].plan(
            context,
            {},
            _NO_QUALITY,
            lambda _: True,
            _NO_DRAWS,
        )

    def connector(self, connector_id: str) -> Connector:
        """The connector with ``connector_id``."""
        return self._sandbox if connector_id == self._sandbox.id else self._default

    def submitted(self, connector_id: str, message: Message, at: datetime) -> None:
        """Nothing is learned."""

    def submitted_many(self, connector_id: str, count: int, at: datetime) -> None:
        """Nothing is learned."""

    def failed(self, connector_id: str, code: str, at: datetime) -> None:
        """Nothing is learned."""


class _NoQuality:
    def stats(self, connector_id: str, now: datetime) -> None:
        return None


_NO_QUALITY = _NoQuality()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how late a temporarily failing submit is tried again."""

    delays: Sequence[float] = (2, 5, 15, 30, 60, 120, 300, 600)

    @property
    def max_attempts(self) -> int:
        """Submits tried in all before the message fails."""
        return len(self.delays) + 1

    def delay(self, attempt: int) -> timedelta:
        """The wait after the ``attempt``-th failed submit (1-based)."""
        index = min(max(attempt, 1), len(self.delays)) - 1
        return timedelta(seconds=self.delays[index])


@dataclass(slots=True)
class _Started:
    """A dispatch job of a batch whose first submit ``run_each`` started."""

    job: Job
    message: Message
    notify: bool
    plan: RoutePlan
    candidate: str


@dataclass
class _History:
    """Earlier attempts at a message: connectors given up, temporary failures per connector."""

    tried: set[str] = field(default_factory=set)
    attempts: dict[str, int] = field(default_factory=dict)
    last: tuple[str, str, str] | None = None


class DispatchMessage:
    """Handles ``dispatch`` jobs: submit through the chosen connector and record the outcome."""

    def __init__(
        self,
        store: MessageStore,
        queue: JobQueue,
        router: Router,
        recorder: EventRecorder,
        clock: Clock,
        ids: IdFactory,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._store = store
        self._queue = queue
        self._router = router
        self._recorder = recorder
        self._clock = clock
        self._ids = ids
        self._retry = retry or RetryPolicy()
        #: Messages read by ``prefetch`` for jobs about to start, by id.
        self._prefetched: dict[str, Message] = {}

    async def prefetch(self, jobs: Sequence[Job]) -> None:
        """Read the messages of a claimed batch of dispatch jobs in one go (the runner calls
        this before starting them); each job takes its own, or reads it if it is not here."""
        if len(self._prefetched) > PREFETCHED_KEPT:  # jobs that never ran (a stop)
            self._prefetched.clear()
        ids = [str(job.payload["message_id"]) for job in jobs]
        self._prefetched.update(await self._store.get_messages(ids))

    async def __call__(self, job: Job) -> None:
        """Run one dispatch job to its end: sent, retried later, failed or expired."""
        message_id = str(job.payload["message_id"])
        message = self._prefetched.pop(message_id, None)
        if message is None:
            message = await self._store.get_message(message_id)
        if message is None or message.status not in DISPATCHABLE:
            # Already handled (e.g. recorded before a crash, or canceled): nothing to send.
            await self._queue.complete(job.id, job.lease_owner)
            return
        notify = await self._recorder.wants_notifications(message)
        now = self._clock.now()
        if message.expires_at is not None and now >= message.expires_at:
            await self._finish(job, message_id, S.EXPIRED, "validity ended before sending", None)
            return
        plan = self._router.plan(message)
        await self._route(job, message, notify, plan, await self._history(message), now)

    async def run_each(self, batch: JobBatch) -> None:
        """Run a claim's dispatch jobs together: the messages that go out at once on the first
        connector of their plan (a carrier that can start a submit without waiting, the
        common case) are submitted in one go and their ``sent`` changes written together as
        their responses come; every other job, and every submit that fails, continues on its
        own as ``__call__`` would.

        A message that finds its carrier's windows full waits in the batch, in line with
        the carrier's other waiting submits (``SubmitStarting.slot_wait``), and starts when
        a slot frees, instead of waiting in a task of its own; after ``DEFERRED_WAIT``
        seconds it goes on alone."""
        now = self._clock.now()
        listening: dict[str, bool] = {}
        starters: dict[str, SubmitStarting | None] = {}
        pending: dict[asyncio.Future[SubmitResult], _Started] = {}
        #: Messages waiting for a slot, by candidate, in their order; one slot wait each.
        deferred: dict[str, list[_Started]] = {}
        waits: dict[asyncio.Future[Any], str] = {}
        #: The submits and the slot waits, as they complete.
        completions = Completions()
        for job in batch.jobs:
            message_id = str(job.payload["message_id"])
            message = self._prefetched.get(message_id)
            if (
                message is None
                or message.status not in DISPATCHABLE
                or message.attempts
                or message.connector_id is not None
                or (message.expires_at is not None and now >= message.expires_at)
            ):
                batch.alone(job)  # finds its message where prefetch left it
                continue
            tenant_id = message.tenant_id
            listens = listening.get(tenant_id)
            if listens is None:
                try:
                    listens = await self._recorder.endpoints_listening(tenant_id)
                except Exception:  # the job finds out on its own (and fails alone)
                    batch.alone(job)
                    continue
                listening[tenant_id] = listens
            plan = self._router.plan(message)
            candidate = next_candidate(plan, set(), accepted=accepted_by(message))
            if candidate is None:
                batch.alone(job)
                continue
            if candidate in starters:
                connector = starters[candidate]
            else:
                found = self._router.connector(candidate)
                connector = starters[candidate] = (
                    found if isinstance(found, SubmitStarting) and found.ready else None
                )
            if connector is None:
                batch.alone(job)
                continue
            started = _Started(job, message, listens or bool(message.callback_url), plan, candidate)
            waiting = deferred.get(candidate)
            if waiting is not None:  # behind the others waiting for this carrier
                waiting.append(started)
                continue
            future = connector.start_submit(message)
            if future is not None:
                del self._prefetched[message_id]
                pending[future] = started
                completions.watch(future)
                continue
            wait = connector.slot_wait(message)
            if wait is None:
                batch.alone(job)
            else:
                deferred[candidate] = [started]
                waits[wait] = candidate
                completions.watch(wait)
        waited_since = asyncio.get_running_loop().time() if waits else 0.0
        #: Waves of ``sent`` changes being written while the batch takes further answers.
        writes: list[asyncio.Task[None]] = []
        try:
            while pending or waits:
                timeout = None
                if waits:
                    timeout = waited_since + DEFERRED_WAIT - asyncio.get_running_loop().time()
                done = await completions.next(timeout)
                if not done:  # no slot within DEFERRED_WAIT: the rest wait on their own
                    for wait in waits:
                        wait.cancel()
                    waits.clear()
                    for waiting in deferred.values():
                        for started in waiting:
                            batch.alone(started.job)
                    deferred.clear()
                    continue
                sent: list[tuple[_Started, SubmitResult]] = []
                for future in done:
                    candidate = waits.pop(future, None)
                    if candidate is not None:
                        self._start_deferred(
                            batch, candidate, deferred, starters, pending, waits, completions
                        )
                        continue
                    submitted = pending.pop(future, None)
                    if submitted is None:  # a slot wait given up (cancelled) earlier
                        continue
                    if not future.cancelled() and future.exception() is None:
                        sent.append((submitted, future.result()))
                    else:  # failover, retries and failures as ``__call__`` handles them
                        batch.alone(
                            submitted.job, functools.partial(self._resume, submitted, future)
                        )
                if not sent:
                    continue
                if pending or waits:
                    # More answers to come: they must not wait for this wave's commit
                    # before their own changes are written (a receipt would overtake them).
                    writes.append(asyncio.create_task(self._sent_each(batch, sent)))
                else:
                    await self._sent_each(batch, sent)
        finally:
            for wait in waits:
                wait.cancel()
        if writes:
            await asyncio.gather(*writes)

    def _start_deferred(
        self,
        batch: JobBatch,
        candidate: str,
        deferred: dict[str, list[_Started]],
        starters: dict[str, SubmitStarting | None],
        pending: dict[asyncio.Future[SubmitResult], _Started],
        waits: dict[asyncio.Future[Any], str],
        completions: Completions,
    ) -> None:
        """A slot of ``candidate`` freed: start its waiting messages in their order while
        they start; the first that does not waits again (``slot_wait``) or, if no slot is
        what stops it, goes on alone, and so on down the line."""
        waiting = deferred.pop(candidate, [])
        connector = starters[candidate]
        while waiting:
            started = waiting[0]
            future = None if connector is None else connector.start_submit(started.message)
            if future is not None:
                waiting.pop(0)
                self._prefetched.pop(started.message.id, None)
                pending[future] = started
                completions.watch(future)
                continue
            wait = None if connector is None else connector.slot_wait(started.message)
            if wait is not None:
                deferred[candidate] = waiting
                waits[wait] = candidate
                completions.watch(wait)
                return
            waiting.pop(0)
            batch.alone(started.job)

    async def _resume(self, started: _Started, submit: asyncio.Future[SubmitResult]) -> None:
        """``__call__`` from the end of a submit ``run_each`` started."""
        message = started.message
        await self._route(
            started.job,
            message,
            started.notify,
            started.plan,
            _History(),
            self._clock.now(),
            (started.candidate, submit),
        )

    async def _sent_each(self, batch: JobBatch, sent: list[tuple[_Started, SubmitResult]]) -> None:
        """Record the ``sent`` changes of submits that went through, in one hand-over to the
        store; a change that failed is retried as a crashed job would be."""
        now = self._clock.now()
        changes = []
        by_connector: dict[str, int] = {}
        for started, result in sent:
            by_connector[started.candidate] = by_connector.get(started.candidate, 0) + 1
            changes.append(
                MessageChange(  # by position: message_id, change, complete_job
                    started.message.id,
                    self._sent_change(started.candidate, result, started.notify, now),
                    started.job.id,
                )
            )
        for connector_id, count in by_connector.items():
            self._router.submitted_many(connector_id, count, now)
        outcomes = await self._store.mutate_each(changes)
        for (started, _), outcome in zip(sent, outcomes, strict=True):
            if isinstance(outcome, Exception):
                batch.failed(started.job, outcome)
            else:
                batch.finished(started.job)

    async def _route(
        self,
        job: Job,
        message: Message,
        notify: bool,
        plan: RoutePlan,
        history: _History,
        now: datetime,
        started: tuple[str, asyncio.Future[SubmitResult]] | None = None,
    ) -> None:
        """Try the plan's connectors in order until one takes ``message`` (``started``: the
        first one's submit, already under way)."""
        message_id = message.id
        tried = history.tried
        attempt = message.attempts
        last = history.last
        while True:
            if started is not None:
                candidate, under_way = started
                started = None
                connector = self._router.connector(candidate)
                submit: Awaitable[SubmitResult] = under_way
            else:
                found = next_candidate(plan, tried, accepted=accepted_by(message))
                if found is None:
                    connector_id, detail, code = last or (
                        None,
                        "no connector to send to",
                        "no_route",
                    )
                    await self._finish(job, message_id, S.FAILED, detail, code, connector_id)
                    return
                candidate = found
                connector = self._router.connector(candidate)
                # The others looked at only when this one is not ready (not per message).
                if not connector.ready and any(
                    self._router.connector(c).ready
                    for c in plan.order
                    if c not in tried and c != candidate
                ):
                    # Down or unbound while another candidate is up: fail over without waiting.
                    await self._failover(
                        message, candidate, "not_ready", "connector not ready", None
                    )
                    tried.add(candidate)
                    last = (candidate, "connector not ready", "connector_unavailable")
                    continue
                submit = connector.submit(message)
            attempt += 1
            try:
                result = await submit
            except PermanentFailure as exc:
                SUBMIT_ERRORS.labels(candidate, "permanent").inc()
                self._router.failed(candidate, exc.code, now)
                last = (candidate, exc.detail, exc.code)
                if exc.fault is Fault.MESSAGE:
                    # The message itself is refused (e.g. an invalid destination): every
                    # carrier would refuse it, so it fails here instead of failing over.
                    detail = f"{exc.detail} (the message is at fault: not re-routed)"
                    await self._finish(job, message_id, S.FAILED, detail, exc.code, candidate)
                    return
                if next_candidate(plan, {*tried, candidate}) is None:
                    await self._finish(job, message_id, S.FAILED, exc.detail, exc.code, candidate)
                    return
                await self._failover(message, candidate, "permanent", exc.detail, exc.code, attempt)
                tried.add(candidate)
            except TemporaryFailure as exc:
                kind = "throttled" if isinstance(exc, Throttled) else "temporary"
                SUBMIT_ERRORS.labels(candidate, kind).inc()
                self._router.failed(candidate, exc.code, now)
                last = (candidate, exc.detail, exc.code)
                here = history.attempts.get(candidate, 0) + 1
                retry_at = now + self._retry.delay(here)
                out_of_time = message.expires_at is not None and retry_at >= message.expires_at
                # Another carrier that is up takes the message now (one retry cycle, not the
                # whole budget); the budget is for a route with nowhere else to go.
                others = [c for c in plan.order if c not in tried and c != candidate]
                elsewhere = any(self._router.connector(c).ready for c in others)
                if not elsewhere and here < self._retry.max_attempts and not out_of_time:
                    await self._temporary(job, message, candidate, exc, attempt, retry_at)
                    return
                if elsewhere:
                    reason = "another connector is up"
                elif out_of_time:
                    reason = "validity ends before a retry"
                else:
                    reason = "retry budget spent"
                if next_candidate(plan, {*tried, candidate}) is None:
                    await self._finish(
                        job,
                        message_id,
                        S.FAILED,
                        f"{exc.detail} ({reason} after {attempt} attempts)",
                        exc.code,
                        candidate,
                    )
                    return
                await self._failover(
                    message, candidate, kind, f"{exc.detail} ({reason})", exc.code, attempt
                )
                tried.add(candidate)
            else:
                self._router.submitted(candidate, message, now)
                await self._sent(job, message_id, candidate, result, notify)
                return

    async def _history(self, message: Message) -> _History:
        """What earlier attempts at ``message`` left in its events (none on a first try)."""
        history = _History()
        if message.attempts == 0 and message.connector_id is None:
            return history
        for event in await self._store.events_of(message.id):
            if event.type != "message.attempt_failed":
                continue
            connector_id = str(event.payload.get("connector", ""))
            if event.payload.get("failover"):
                history.tried.add(connector_id)
            else:
                history.attempts[connector_id] = history.attempts.get(connector_id, 0) + 1
            code = event.payload.get("code")
            history.last = (connector_id, event.detail or "", str(code or "carrier_error"))
        return history

    async def _failover(
        self,
        message: Message,
        connector_id: str,
        reason: str,
        detail: str,
        code: str | None,
        attempt: int | None = None,
    ) -> None:
        """Record that ``connector_id`` is given up for ``message``: the next candidate follows."""
        change = self._attempt_failed(
            connector_id,
            attempt,
            f"{reason} via {connector_id}: {detail}; trying the next connector",
            {
                "attempt": attempt,
                "connector": connector_id,
                "code": code,
                "reason": reason,
                "failover": True,
            },
        )
        await self._store.mutate(message.id, change)

    def _attempt_failed(
        self, connector_id: str, attempt: int | None, detail: str, payload: dict[str, Any]
    ) -> Callable[[Message], Mutation | None]:
        """The change that records an attempt on ``connector_id`` that failed (``detail`` and
        ``payload`` say how); ``attempt``, when given, becomes the message's count of
        attempts. A message no longer waiting to be dispatched is left as it is."""
        now = self._clock.now()

        def change(current: Message) -> Mutation | None:
            if current.status not in DISPATCHABLE:
                return None
            if attempt is not None:
                current.attempts = attempt
            current.connector_id = connector_id
            event = EventRecord(
                id=self._ids.new("evt"),
                tenant_id=current.tenant_id,
                message_id=current.id,
                type="message.attempt_failed",
                status=None,
                sequence=current.status_sequence,
                at=now,
                detail=detail,
                payload=payload,
            )
            return Mutation(current, [event], [])

        return change

    async def _sent(
        self, job: Job, message_id: str, connector_id: str, result: SubmitResult, notify: bool
    ) -> None:
        change = self._sent_change(connector_id, result, notify, self._clock.now())
        await self._store.mutate(message_id, change, complete_job=job.id)

    def _sent_change(
        self, connector_id: str, result: SubmitResult, notify: bool, now: datetime
    ) -> Callable[[Message], Mutation | None]:
        """The change that records a submit ``connector_id`` accepted."""

        def change(message: Message) -> Mutation | None:
            if message.status not in DISPATCHABLE:
                return None
            message.connector_id = connector_id
            message.attempts += 1
            # Part(index, status, carrier_message_id) by position, in a loop: no keyword
            # call and no comprehension's function object per message.
            parts: list[Part] = []
            for index, carrier_id in enumerate(result.carrier_message_ids):
                parts.append(Part(index, S.SENT, carrier_id))
            message.parts = parts
            steps: list[StatusChange | None] = []
            if message.status is S.SCHEDULED:
                steps.append(message.transition(S.QUEUED, now))
            steps.append(message.transition(S.SENDING, now, detail=f"via {connector_id}"))
            steps.append(message.transition(S.SENT, now, detail=f"accepted by {connector_id}"))
            events, jobs = self._recorder.record(message, steps, notify=notify)
            # The receipt sweep (``SweepOverdueReceipts``) makes it ``unknown`` after its
            # ``receipt_due_at``, which was set when it was accepted (ADR 26).
            return Mutation(message, events, jobs)

        return change

    async def _finish(
        self,
        job: Job,
        message_id: str,
        status: MessageStatus,
        detail: str,
        error_code: str | None,
        connector_id: str | None = None,
    ) -> None:
        now = self._clock.now()
        message = await self._store.get_message(message_id)
        notify = message is not None and await self._recorder.wants_notifications(message)

        def change(message: Message) -> Mutation | None:
            if message.status not in DISPATCHABLE:
                return None
            if connector_id is not None:
                message.connector_id = connector_id
                message.attempts += 1
            steps = [message.transition(status, now, detail=detail, error_code=error_code)]
            events, jobs = self._recorder.record(message, steps, notify=notify)
            return Mutation(message, events, jobs)

        await self._store.mutate(message_id, change, complete_job=job.id)

    async def _temporary(
        self,
        job: Job,
        message: Message,
        connector_id: str,
        exc: TemporaryFailure,
        attempt: int,
        retry_at: datetime,
    ) -> None:
        reason = "throttled" if isinstance(exc, Throttled) else "temporary"
        change = self._attempt_failed(
            connector_id,
            attempt,
            f"attempt {attempt} via {connector_id}: {exc.detail} ({exc.code}); "
            f"retry at {retry_at.isoformat()}",
            {"attempt": attempt, "connector": connector_id, "code": exc.code, "reason": reason},
        )
        await self._store.mutate(message.id, change)
        await self._queue.retry(job.id, job.lease_owner, retry_at, f"{exc.code}: {exc.detail}")


class SweepOverdueReceipts:
    """Messages still waiting for a receipt past their ``receipt_due_at`` become ``unknown``.

    Every outbound message has its deadline from acceptance on (ADR 26). The sweep walks the
    deadlines in order, ``batch`` at a time, from the mark the store keeps (so every deadline
    is read once, also after a stop), makes the messages among them still ``sent`` or
    ``sending`` ``unknown``, and only then moves the mark past them. Any number of processes
    may sweep: a message's change is decided on its current row, and the mark only moves on.
    """

    def __init__(
        self,
        store: MessageStore,
        recorder: EventRecorder,
        clock: Clock,
        *,
        batch: int = 256,
    ) -> None:
        self._store = store
        self._recorder = recorder
        self._clock = clock
        self._batch = batch

    async def __call__(self) -> int:
        """One step of at most ``batch`` deadlines; how many messages it found still waiting."""
        swept, _ = await self.step()
        return swept

    async def step(self) -> tuple[int, bool]:
        """One step: how many waiting messages it found, and whether more deadlines may be due."""
        now = self._clock.now()
        page = await self._store.overdue_receipts(now, self._batch)
        if page.waiting:
            found = await self._store.get_messages(page.waiting)
            await asyncio.gather(*(self._expire(message, now) for message in found.values()))
        if page.last is not None:
            # Only once the changes are written: a stop before this walks them again.
            await self._store.mark_receipts_swept(page.last)
        return len(page.waiting), page.full

    async def run(self, stop: asyncio.Event, every: float) -> None:
        """Sweep every ``every`` seconds (at once again while batches come back full) until
        ``stop`` is set."""
        while not stop.is_set():
            more = False
            try:
                _, more = await self.step()
            except Exception:  # the next sweep tries again; the mark stays until then
                log.exception("receipt sweep failed")
            if more:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)

    async def _expire(self, found: Message, now: datetime) -> None:
        notify = await self._recorder.wants_notifications(found)

        def change(message: Message) -> Mutation | None:
            due = message.receipt_due_at
            if due is None or due > now or message.status not in (S.SENT, S.SENDING):
                return None  # the receipt came meanwhile
            step = message.transition(S.UNKNOWN, now, detail="no receipt within the validity")
            events, jobs = self._recorder.record(message, [step], notify=notify)
            return Mutation(message, events, jobs)

        await self._store.mutate(found.id, change)


class ExpireMessage:
    """Handles ``expire`` jobs, which messages sent before ``receipt_due_at`` existed still
    have: a message still waiting for its receipt becomes ``unknown``."""

    def __init__(self, store: MessageStore, recorder: EventRecorder, clock: Clock) -> None:
        self._store = store
        self._recorder = recorder
        self._clock = clock

    async def __call__(self, job: Job) -> None:
        """Mark the message unknown if no receipt came in time; otherwise do nothing."""
        message_id = str(job.payload["message_id"])
        message = await self._store.get_message(message_id)
        notify = message is not None and await self._recorder.wants_notifications(message)
        now = self._clock.now()

        def change(message: Message) -> Mutation | None:
            if message.status not in (S.SENT, S.SENDING):
                return None
            step = message.transition(S.UNKNOWN, now, detail="no receipt within the validity")
            events, jobs = self._recorder.record(message, [step], notify=notify)
            return Mutation(message, events, jobs)

        await self._store.mutate(message_id, change, complete_job=job.id)
