"""``[[routes]]`` and per-connector price lists in pigeon.toml: built into a routing table,
every problem reported at start."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pigeon.config import ConfigError, Settings, build_routing, load_settings
from pigeon.domain.messages import Category
from pigeon.domain.routing import LeastCost, RouteContext, Weighted

CONNECTORS = (
    '[[connectors]]\nid = "a"\ntype = "smpp"\nhost = "127.0.0.1"\nport = 2775\n'
    'prices = "a.csv"\n\n'
    '[[connectors]]\nid = "b"\ntype = "smpp"\nhost = "127.0.0.1"\nport = 2776\n\n'
)


def _context(country: str = "GB", tenant: str = "ten_x", hour: int = 12) -> RouteContext:
    return RouteContext(
        e164="+447400123456",
        country=country,
        tenant_id=tenant,
        category=Category.TRANSACTIONAL,
        sender_kind=None,
        now=datetime(2026, 1, 1, hour, 0, tzinfo=UTC),
    )


def _load(
    tmp_path: Path, routes: str, prices: str = "country,price,currency\nGB,0.01,EUR\n"
) -> Settings:
    (tmp_path / "a.csv").write_text(prices)
    config = tmp_path / "pigeon.toml"
    config.write_text(CONNECTORS + routes)
    return load_settings({}, config)


def test_routes_become_a_routing_table(tmp_path: Path) -> None:
    """Filters, strategies, weights, a tenant override and the default route are all built."""
    settings = _load(
        tmp_path,
        '[[routes]]\nid = "uk-day"\ncountries = ["GB"]\nstrategy = "least_cost"\n'
        'min_delivery_rate = 0.8\nmin_samples = 5\ncandidates = ["a", "b"]\n'
        'hours = {start = "08:00", end = "20:00", tz = "Europe/London"}\n\n'
        '[[routes]]\nid = "vip"\ntenant = "ten_vip"\nstrategy = "weighted"\n'
        'candidates = [{connector = "b", weight = 3}, {connector = "a", weight = 1}]\n\n'
        '[[routes]]\nid = "rest"\ndefault = true\ncandidates = ["b"]\n',
    )
    routing = build_routing(settings)
    table = routing.table
    assert table.default.id == "rest"
    assert table.match(_context()).id == "uk-day"
    assert table.match(_context(hour=22)).id == "rest"
    assert table.match(_context(country="FR")).id == "rest"
    assert table.match(_context(tenant="ten_vip")).id == "vip"
    strategy = table.match(_context()).strategy
    assert isinstance(strategy, LeastCost)
    assert (strategy.min_delivery_rate, strategy.min_samples) == (0.8, 5)
    assert isinstance(table.match(_context(tenant="ten_vip")).strategy, Weighted)
    assert set(routing.prices) == {"a"}


def test_without_routes_the_default_connector_takes_everything(tmp_path: Path) -> None:
    """No [[routes]]: the default route sends to default_connector (else the first one)."""
    assert build_routing(_load(tmp_path, "")).table.default.candidates[0].connector_id == "a"
    config = tmp_path / "pigeon.toml"
    config.write_text('default_connector = "b"\n' + CONNECTORS)
    assert build_routing(load_settings({}, config)).default_connector == "b"


def test_every_routing_problem_is_listed(tmp_path: Path) -> None:
    """Unknown connectors, bad filters, bad strategies and two defaults are all reported."""
    with pytest.raises(ConfigError) as error:
        _load(
            tmp_path,
            '[[routes]]\nid = "r1"\ncandidates = ["nope"]\n\n'
            '[[routes]]\nid = "r2"\ncountries = ["XX1"]\ncandidates = ["a"]\n\n'
            '[[routes]]\nid = "r3"\nstrategy = "cheapest"\ncandidates = ["a"]\n\n'
            '[[routes]]\nid = "r4"\nhours = {start = "08:00"}\ncandidates = ["a"]\n\n'
            '[[routes]]\nid = "r5"\ncolour = "red"\ncandidates = ["a"]\n\n'
            '[[routes]]\nid = "d1"\ndefault = true\ncandidates = ["a"]\n\n'
            '[[routes]]\nid = "d2"\ndefault = true\ncandidates = ["b"]\n',
        )
    text = str(error.value)
    for fragment in ("'nope'", "r2", "cheapest", "hours", "colour", "only one route"):
        assert fragment in text


def test_bad_price_list_is_a_config_error(tmp_path: Path) -> None:
    """A price list CSV with a bad line fails the start, naming the connector and the line."""
    with pytest.raises(ConfigError, match=r"connector 'a'.*line 2"):
        _load(tmp_path, "", prices="country,price,currency\nGB,cheap,EUR\n")


def test_missing_price_list_is_a_config_error(tmp_path: Path) -> None:
    """A price list path that does not exist fails the start."""
    config = tmp_path / "pigeon.toml"
    config.write_text(CONNECTORS)
    with pytest.raises(ConfigError, match="cannot read prices"):
        load_settings({}, config)
