"""The worker processes' environments: each child's role and wake settings."""

from __future__ import annotations

from pigeon.supervisor import WorkerProcesses


def test_each_child_gets_its_role_and_the_others_as_wake_peers() -> None:
    """A child's environment is the parent's, its role's variables, and its wake port with
    the parent and the other children as peers: those of the urgent lane alone apart, told
    only of urgent jobs."""
    roles = [{"PIGEON_JOB_LANE": "regular"}, {"PIGEON_JOB_LANE": "urgent", "X": "1"}]
    children = WorkerProcesses(
        roles, ["pigeon", "worker"], {"PIGEON_JOB_LANE": "all", "KEEP": "yes"}, parent_wake_port=7
    )
    first, second = children.env_for(0), children.env_for(1)
    assert (first["PIGEON_JOB_LANE"], second["PIGEON_JOB_LANE"]) == ("regular", "urgent")
    assert "X" not in first
    assert second["X"] == "1"
    assert first["KEEP"] == second["KEEP"] == "yes"
    assert first["PIGEON_WORKER_PROCESSES"] == "0"
    assert first["PIGEON_WAKE_PORT"] == str(children.ports[0])
    assert first["PIGEON_WAKE_PEERS"] == "127.0.0.1:7"
    assert first["PIGEON_WAKE_URGENT_PEERS"] == f"127.0.0.1:{children.ports[1]}"
    assert second["PIGEON_WAKE_PEERS"] == f"127.0.0.1:7,127.0.0.1:{children.ports[0]}"
    assert second["PIGEON_WAKE_URGENT_PEERS"] == ""
    assert children.wake_peers() == (
        f"127.0.0.1:{children.ports[0]}",
        f"127.0.0.1:{children.ports[1]}",
    )
