"""Lease owners named after their process, so that a process can tell which owners are gone.

A job leased by a process that died (``kill -9``, an out-of-memory kill, a crash) stays
leased until its lease expires (``lease_seconds``, a minute by default): the messages it held
wait that long after a restart, OTPs included. The operating system knows better. An owner
name ends with what identifies its process on this machine (``@`` then the kernel's boot id,
the process-id namespace and the process's start time), and ``owner_gone`` answers from
``/proc`` whether that process has ended, so its leases can be taken over at once
(``SqlJobQueue.release_gone_leases``).

``owner_gone`` says ``True`` only when it is sure: the owner ran under this kernel's current
boot and in this process's pid namespace (so its process id means the same process here),
and no process with that id runs any more, or a different one does (another start time), or
it is a zombie. An owner from another machine, another container, an earlier boot, without
the identity (names made before it existed) or anywhere ``/proc`` cannot be read is not gone:
its leases expire as before.
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

__all__ = ["owner_gone", "process_identity", "process_owner"]

_PROC = Path("/proc")


def _boot_id(proc: Path) -> str:
    return (proc / "sys/kernel/random/boot_id").read_text().strip().replace("-", "")


def _pid_namespace(proc: Path) -> str:
    # "pid:[4026531836]": the namespace's inode.
    return os.readlink(proc / "self/ns/pid").partition("[")[2].rstrip("]")


def _start_and_state(proc: Path, pid: int) -> tuple[str, str] | None:
    """The start time (clock ticks after boot) and state letter of process ``pid``, or
    ``None`` when no such process exists."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces or parentheses.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19], fields[0]  # fields 22 and 3 of proc(5)


def process_identity(pid: int | None = None, proc: Path = _PROC) -> str:
    """What names process ``pid`` (this one by default) on this machine: boot id, pid
    namespace and start time, dot-separated; empty where ``/proc`` says nothing."""
    pid = os.getpid() if pid is None else pid
    try:
        found = _start_and_state(proc, pid)
        if found is None:
            return ""
        return f"{_boot_id(proc)}.{_pid_namespace(proc)}.{found[0]}"
    except (OSError, ValueError, IndexError):
        return ""


def process_owner(proc: Path = _PROC) -> str:
    """A lease owner name for this process: ``host:pid:token``, then ``@`` and its identity
    when there is one."""
    pid = os.getpid()
    name = f"{socket.gethostname()}:{pid}:{secrets.token_hex(3)}"
    identity = process_identity(pid, proc)
    return f"{name}@{identity}" if identity else name


def owner_gone(owner: str, proc: Path = _PROC) -> bool:
    """Whether the process that owner name ``owner`` stands for has surely ended."""
    name, at, identity = owner.rpartition("@")
    if not at:
        return False
    boot, _, rest = identity.partition(".")
    namespace, _, started = rest.partition(".")
    pid_text = name.split(":")[-2] if name.count(":") >= 2 else ""
    if not (boot and namespace and started and pid_text.isdigit()):
        return False
    try:
        if boot != _boot_id(proc) or namespace != _pid_namespace(proc):
            return False
        found = _start_and_state(proc, int(pid_text))
    except (OSError, ValueError, IndexError):
        return False
    return found is None or found[0] != started or found[1] in ("Z", "X")
