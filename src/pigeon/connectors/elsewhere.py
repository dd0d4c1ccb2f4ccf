"""A carrier whose link another process on this host holds.

``pigeon serve`` with ``worker_processes`` leaves dispatch to its workers, which hold the SMPP
binds. Binding from ``serve`` too would spend one of the few binds a carrier allows an
account on a link that never sends (a carrier that allows as many binds as the workers use
would refuse one of theirs). ``serve`` keeps such a carrier in its routing as a
``LinkHeldElsewhere``: routes and explanations see it, ``ready`` is what the workers report
(``pigeon.worker_reports``), and nothing is ever submitted through it.
"""

from __future__ import annotations

from collections.abc import Callable

from pigeon.domain.errors import TemporaryFailure
from pigeon.domain.messages import Message
from pigeon.ports import SubmitResult


class LinkHeldElsewhere:
    """``ports.Connector`` for a carrier linked from another process: ready as that process
    reports, every submit a temporary failure (this process sends nothing)."""

    def __init__(self, connector_id: str, ready: Callable[[str], bool]) -> None:
        self._id = connector_id
        self._ready = ready

    @property
    def id(self) -> str:
        """The carrier's connector id."""
        return self._id

    @property
    def ready(self) -> bool:
        """Whether a process holding the link reported it ready lately."""
        return self._ready(self._id)

    async def start(self) -> None:
        """Nothing to open: the link is another process's."""

    async def stop(self) -> None:
        """Nothing to close."""

    async def submit(self, message: Message) -> SubmitResult:
        """Refuse: the worker processes send, not this one."""
        raise TemporaryFailure(
            f"connector {self._id!r} is linked from the worker processes, not this one",
            code="connector_elsewhere",
        )
