"""The cross-process wake signal: UDP datagrams on loopback that nudge job runners."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pigeon.config import ConfigError, load_settings, parse_peers
from pigeon.queue.wake import WakeBroadcast, WakeListener


async def test_a_broadcast_reaches_every_listener() -> None:
    """Each peer's listener calls its callback when another process says jobs are due."""
    heard: list[str] = []
    got = asyncio.Event()

    def hear(name: str) -> None:
        heard.append(name)
        if len(set(heard)) == 2:
            got.set()

    first = WakeListener("127.0.0.1", 0, lambda _urgent: hear("first"))
    second = WakeListener("127.0.0.1", 0, lambda _urgent: hear("second"))
    ports = [await first.start(), await second.start()]
    broadcast = WakeBroadcast([("127.0.0.1", port) for port in ports])
    try:
        broadcast()
        await asyncio.wait_for(got.wait(), timeout=10)
    finally:
        broadcast.close()
        first.close()
        second.close()
    assert sorted(set(heard)) == ["first", "second"]


async def test_calls_in_one_loop_turn_send_one_datagram() -> None:
    """A burst of wake calls in one loop turn costs one datagram per peer."""
    heard: list[int] = []
    listener = WakeListener("127.0.0.1", 0, lambda _urgent: heard.append(1))
    port = await listener.start()
    broadcast = WakeBroadcast([("127.0.0.1", port)])
    try:
        for _ in range(100):
            broadcast()
        for _ in range(200):
            await asyncio.sleep(0.01)
            if heard:
                break
        await asyncio.sleep(0.05)
    finally:
        broadcast.close()
        listener.close()
    assert heard == [1]


async def test_one_urgent_call_makes_the_coalesced_datagram_urgent() -> None:
    """A burst with one urgent job in it wakes the peer once, as urgent; a later burst
    without one is not urgent."""
    heard: list[bool] = []
    listener = WakeListener("127.0.0.1", 0, heard.append)
    port = await listener.start()
    broadcast = WakeBroadcast([("127.0.0.1", port)])

    async def hear(count: int) -> None:
        for _ in range(200):
            await asyncio.sleep(0.01)
            if len(heard) >= count:
                return

    try:
        broadcast()
        broadcast(urgent=True)
        broadcast()
        await hear(1)
        broadcast()
        await hear(2)
    finally:
        broadcast.close()
        listener.close()
    assert heard == [True, False]


async def test_an_urgent_only_peer_hears_urgent_wakes_alone() -> None:
    """A peer of the urgent lane alone (an OTP worker) is told of urgent jobs only; a regular
    peer of both kinds, in order."""
    regular: list[bool] = []
    urgent: list[bool] = []
    regular_listener = WakeListener("127.0.0.1", 0, regular.append)
    urgent_listener = WakeListener("127.0.0.1", 0, urgent.append)
    broadcast = WakeBroadcast(
        [("127.0.0.1", await regular_listener.start())],
        [("127.0.0.1", await urgent_listener.start())],
    )

    async def hear(heard: list[bool], count: int) -> None:
        for _ in range(200):
            if len(heard) >= count:
                return
            await asyncio.sleep(0.01)

    try:
        broadcast()
        await hear(regular, 1)
        broadcast(urgent=True)
        await hear(regular, 2)
        await hear(urgent, 1)
        broadcast()
        await hear(regular, 3)
        await asyncio.sleep(0.05)  # a stray datagram to the urgent peer would be here by now
    finally:
        broadcast.close()
        regular_listener.close()
        urgent_listener.close()
    assert regular == [False, True, False]
    assert urgent == [True]
    assert len(broadcast.peers) == 2


def test_a_broadcast_to_a_closed_port_does_not_raise() -> None:
    """A peer that is restarting (nobody listening) costs nothing but the datagram."""
    broadcast = WakeBroadcast([("127.0.0.1", 9)])
    broadcast()
    broadcast.close()


def test_peers_parse_hosts_and_ports() -> None:
    """``host:port`` lists parse, IPv6 in brackets included; anything else is refused."""
    assert parse_peers("127.0.0.1:7001, [::1]:7002,") == [("127.0.0.1", 7001), ("::1", 7002)]
    assert parse_peers("") == []
    for bad in ("7001", "localhost:", "a:b", "h:70000"):
        with pytest.raises(ValueError, match="host:port"):
            parse_peers(bad)


def test_settings_refuse_bad_worker_and_wake_values(tmp_path: Path) -> None:
    """worker_processes out of range and malformed wake_peers are configuration errors."""
    empty = tmp_path / "pigeon.toml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="worker_processes"):
        load_settings(environ={"PIGEON_WORKER_PROCESSES": "-1"}, config_file=empty)
    with pytest.raises(ConfigError, match="wake_peers"):
        load_settings(environ={"PIGEON_WAKE_PEERS": "nope"}, config_file=empty)
    with pytest.raises(ConfigError, match="wake_urgent_peers"):
        load_settings(environ={"PIGEON_WAKE_URGENT_PEERS": "nope"}, config_file=empty)
