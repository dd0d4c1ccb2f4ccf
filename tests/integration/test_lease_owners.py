"""Lease owners named after their process: ``owner_gone`` read from the real ``/proc``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pigeon.queue.lease_owners import owner_gone, process_identity, process_owner

SRC = str(Path(__file__).resolve().parents[2] / "src")
PRINT_OWNER = "from pigeon.queue.lease_owners import process_owner; print(process_owner())"

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")


def _child(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
    )


@pytest.fixture
def running_child() -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A child process that prints its owner name and waits for its standard input."""
    child = _child(PRINT_OWNER + "; import sys; sys.stdin.read()")
    assert child.stdout is not None
    owner = child.stdout.readline().strip()
    try:
        yield child, owner
    finally:
        child.kill()
        child.communicate()  # reaps it and closes its pipes


def test_this_process_is_not_gone() -> None:
    """The owner name of a running process (this one) is not gone."""
    owner = process_owner()
    assert owner.startswith(f"{os.uname().nodename}:{os.getpid()}:")
    assert "@" in owner
    assert not owner_gone(owner)


def test_two_owner_names_of_one_process_differ() -> None:
    """Two runners in one process hold leases under names of their own."""
    assert process_owner() != process_owner()


def test_a_child_that_exited_and_was_reaped_is_gone() -> None:
    """Once its process has ended, an owner is gone."""
    child = _child(PRINT_OWNER)
    owner = child.communicate()[0].strip()
    assert child.returncode == 0
    assert owner_gone(owner)


def test_a_running_child_is_not_gone_until_it_is_killed(
    running_child: tuple[subprocess.Popen[str], str],
) -> None:
    """A live process is not gone; killed, it is, even before it is reaped (a zombie)."""
    child, owner = running_child
    assert not owner_gone(owner)
    child.kill()
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # dead, not reaped yet
    assert Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1][0] == "Z"
    assert owner_gone(owner)
    child.wait()
    assert owner_gone(owner)


def test_a_process_id_used_again_by_another_process_is_gone() -> None:
    """The same process id with another start time is another process: the owner is gone."""
    owner = process_owner()
    boot, namespace, started = owner.rpartition("@")[2].split(".")
    other = owner.rpartition("@")[0] + f"@{boot}.{namespace}.{int(started) + 1}"
    assert owner_gone(other)


def test_owners_it_cannot_judge_are_never_gone() -> None:
    """Another boot, another pid namespace, a name without the identity (made by an older
    version) or a malformed one: the lease is left to expire."""
    owner = process_owner()
    name, _, identity = owner.rpartition("@")
    boot, namespace, started = identity.split(".")
    dead = f"{name.rsplit(':', 2)[0]}:999999999:abcdef"
    for judged in (
        f"{dead}@{'0' * 32}.{namespace}.{started}",  # another boot
        f"{dead}@{boot}.1.{started}",  # another pid namespace (a container)
        dead,  # no identity
        f"{dead}@",
        f"{dead}@{boot}.{namespace}",
        "host:notapid:token@" + identity,
        "",
    ):
        assert not owner_gone(judged), judged


def test_without_proc_there_is_no_identity_and_nothing_is_gone(tmp_path: Path) -> None:
    """Where ``/proc`` says nothing, names carry no identity and no owner is judged gone."""
    assert process_identity(proc=tmp_path) == ""
    owner = process_owner(proc=tmp_path)
    assert "@" not in owner
    assert not owner_gone(process_owner(), proc=tmp_path)
