"""Explain: the routes examined and the candidates' figures agree with the plan made."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from hypothesis import given, settings
from hypothesis import strategies as st

from pigeon.domain.addressing import SenderKind
from pigeon.domain.messages import Category
from pigeon.domain.price_lists import PriceList
from pigeon.domain.pricing import Money
from pigeon.domain.quality import QualityStats, QualityWindow
from pigeon.domain.routing import (
    Candidate,
    LeastCost,
    Priority,
    Route,
    RouteContext,
    RouteFilter,
    RoutePlan,
    RoutingTable,
    Strategy,
    Weighted,
    category_in,
    country_in,
    describe,
    next_candidate,
    prefix_in,
    sender_kind_in,
    tenant_is,
    time_window,
    where,
)

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CONNECTORS = ("a", "b", "c", "d", "e")
DESTINATIONS = (("+447700900123", "GB"), ("+442079460000", "GB"), ("+33612345678", "FR"))


class Quality:
    def __init__(self, known: Mapping[str, QualityStats]) -> None:
        self.known = dict(known)

    def stats(self, connector_id: str, now: datetime) -> QualityStats | None:
        return self.known.get(connector_id)


def stats(rate: float, outcomes: int, p90: float) -> QualityStats:
    delivered = round(rate * outcomes)
    return QualityStats(
        outcomes, delivered, outcomes - delivered, rate, p90 / 2, p90, MappingProxyType({})
    )


def context(
    destination: tuple[str, str] = DESTINATIONS[0],
    tenant: str = "ten_1",
    category: Category = Category.TRANSACTIONAL,
    sender: SenderKind | None = SenderKind.ALPHANUMERIC,
    now: datetime = T0,
    segments: int = 1,
) -> RouteContext:
    return RouteContext(destination[0], destination[1], tenant, category, sender, now, segments)


# ------------------------------------------------------------------ worked examples


def sample_table() -> RoutingTable:
    return RoutingTable(
        [
            Route("fr", (country_in("FR"),), (Candidate("a"),)),
            Route(
                "uk-marketing",
                (country_in("GB"), category_in(Category.MARKETING)),
                (Candidate("b"),),
            ),
            Route(
                "acme-night",
                (time_window("22:00", "06:00"),),
                (Candidate("c"),),
                Priority(),
                "ten_1",
            ),
            Route(
                "uk",
                (prefix_in("+44"),),
                (Candidate("cheap"), Candidate("dear"), Candidate("down")),
                LeastCost(min_delivery_rate=0.9, min_samples=10),
            ),
        ],
        Route("default", (), (Candidate("sim"),)),
    )


def sample_plan() -> RoutePlan:
    table = sample_table()
    lists = {
        "cheap": PriceList("cheap", "USD", {"+4477": 2_500, "GB": 4_000}),
        "dear": PriceList("dear", "USD", {"GB": 9_000}),
        "down": PriceList("down", "USD", {"GB": 1_000}),
    }
    quality = Quality({"cheap": stats(0.8, 200, 4.0), "dear": stats(0.97, 300, 3.0)})
    return table.plan(context(segments=2), lists, quality, lambda c: c != "down", random.Random(0))


def test_explain_lists_routes_examined_with_the_filter_that_failed() -> None:
    """Each route before the chosen one is named with its failing filter and what it saw."""
    table = sample_table()
    plan = table.plan(context(), {}, Quality({}), lambda _: True, random.Random(0))
    checks = plan.explanation.routes
    assert [(c.route_id, c.matched) for c in checks] == [
        ("acme-night", False),
        ("fr", False),
        ("uk-marketing", False),
        ("uk", True),
    ]
    assert (checks[0].failed_filter, checks[0].observed) == (
        "time 22:00-06:00 UTC",
        "local time 12:00:00 UTC",
    )
    assert (checks[1].failed_filter, checks[1].observed) == ("country in FR", "country GB")
    assert (checks[2].failed_filter, checks[2].observed) == (
        "category in marketing",
        "category transactional",
    )
    assert checks[0].tenant_id == "ten_1"
    assert not plan.explanation.used_default


def test_explain_shows_prices_quality_guard_and_reasons() -> None:
    """Candidates carry price per segment and in total, quality figures and a reason each."""
    plan = sample_plan()
    explanation = plan.explanation
    assert plan.order == ("dear", "cheap", "down")
    assert explanation.chosen == "dear"
    assert explanation.strategy == "least_cost/cost"
    dear, cheap, down = explanation.candidates
    assert (dear.price, dear.total_price, dear.price_key) == (
        Money(9_000, "USD"),
        Money(18_000, "USD"),
        "GB",
    )
    assert (cheap.price, cheap.price_key) == (Money(2_500, "USD"), "+4477")
    assert cheap.guard == "delivery rate 80.0% below 90.0% over 200 outcomes"
    assert cheap.quality == stats(0.8, 200, 4.0)
    assert dear.reason == "first choice: passes quality guard; 0.009000 USD/segment (country GB)"
    assert cheap.reason.startswith("failover #1: fails quality guard: delivery rate 80.0%")
    assert down.reason.startswith("failover #2: unavailable (down, unbound or disabled)")
    assert not down.available
    assert down.quality is None


def test_explain_serialises_for_the_api_and_reads_as_text() -> None:
    """as_dict() is JSON-ready and str() tells the same story in lines."""
    plan = sample_plan()
    explanation = plan.explanation
    data = json.loads(json.dumps(explanation.as_dict()))
    assert data["route"] == "uk"
    assert data["chosen"] == "dear"
    assert [c["connector"] for c in data["candidates"]] == ["dear", "cheap", "down"]
    assert data["candidates"][0]["total_price"] == {"amount": "0.018000", "currency": "USD"}
    assert data["candidates"][1]["quality"]["delivery_rate"] == 0.8
    assert data["candidates"][2]["quality"] is None
    assert data["routes"][-1] == {
        "route": "uk",
        "tenant_id": None,
        "matched": True,
        "failed_filter": None,
        "observed": None,
    }
    text = str(explanation)
    assert text.splitlines()[0] == "route uk (least_cost/cost) -> dear"
    assert "skipped fr: country in FR (country GB)" in text


def test_explain_names_custom_filters() -> None:
    """A where() filter is named by its description, a bare function by its name."""

    def is_weekend(ctx: RouteContext) -> bool:
        return ctx.now.weekday() >= 5

    table = RoutingTable(
        [
            Route("weekend", (is_weekend,), (Candidate("a"),)),
            Route("long", (where("long messages", lambda c: c.segments > 3),), (Candidate("b"),)),
        ],
        Route("default", (), (Candidate("sim"),)),
    )
    plan = table.plan(context(), {}, Quality({}), lambda _: True, random.Random(0))
    assert [(c.failed_filter, c.observed) for c in plan.explanation.routes[:-1]] == [
        ("is_weekend", None),
        ("long messages", None),
    ]
    assert "skipped weekend: is_weekend\n" in str(plan.explanation)


def test_explain_reports_the_weighted_draw() -> None:
    """For a weighted route, explain names the drawn connector and the weights."""
    table = RoutingTable(
        [Route("split", (), (Candidate("a", weight=3), Candidate("b", weight=1)), Weighted())],
        Route("default", (), (Candidate("sim"),)),
    )
    plan = table.plan(context(), {}, Quality({}), lambda _: True, random.Random(3))
    explanation = plan.explanation
    assert explanation.drawn == plan.order[0]
    first = explanation.candidates[0]
    assert first.reason == f"first choice: drawn by weight {first.weight} of 4"
    assert explanation.candidates[1].reason.startswith("failover #1: by weight")


def test_explain_reports_default_and_otp_quality_ranking() -> None:
    """Explain says when the default route was used and when OTPs were ranked by quality."""
    table = RoutingTable(
        [], Route("default", (), (Candidate("x"), Candidate("y")), LeastCost(min_samples=5))
    )
    quality = Quality({"x": stats(0.9, 50, 9.0), "y": stats(0.99, 2, 1.0)})
    plan = table.plan(context(category=Category.OTP), {}, quality, lambda _: True, random.Random(0))
    explanation = plan.explanation
    assert explanation.used_default
    assert explanation.strategy == "least_cost/quality"
    assert [r.route_id for r in explanation.routes] == ["default"]
    x, y = explanation.candidates
    assert "OTP by quality: delivery 90.0%, p90 9.0 s" in x.reason
    assert "OTP by quality: unknown (2 outcomes)" in y.reason
    assert "no price for this destination" in y.reason


def test_explain_is_a_snapshot_of_the_decision() -> None:
    """Quality learnt after planning does not change an explanation rendered later."""
    table = RoutingTable(
        [], Route("default", (), (Candidate("a"), Candidate("b")), LeastCost(min_samples=1))
    )
    window = QualityWindow(min_samples=1)
    window.record_outcome("a", True, 1.0, T0)
    lists = {c: PriceList(c, "USD", {"GB": n}) for n, c in enumerate("ab")}
    plan = table.plan(context(), lists, window, lambda _: True, random.Random(0))
    for _ in range(50):
        window.record_outcome("a", False, 1.0, T0)
    assert plan.order[0] == "a"
    report = plan.explanation.candidates[0]
    assert report.quality is not None
    assert report.quality.outcomes == 1
    assert report.guard is None


def test_explain_agrees_with_the_connectors_actually_tried() -> None:
    """Dispatching through next_candidate tries connectors exactly in explain's order."""
    table = RoutingTable(
        [
            Route(
                "split",
                (country_in("GB"),),
                tuple(Candidate(c, weight=w) for c, w in zip("abc", (5, 3, 2), strict=True)),
                Weighted(),
            )
        ],
        Route("default", (), (Candidate("sim"),)),
    )
    rng = random.Random(11)
    failing = {"a"}  # a carrier whose submits fail: failover must take the next in line
    for _ in range(500):
        plan = table.plan(context(), {}, Quality({}), lambda _: True, rng)
        tried: list[str] = []
        accepted: str | None = None
        while (connector := next_candidate(plan, tried, accepted=accepted)) is not None:
            tried.append(connector)
            if connector not in failing:
                accepted = connector
        reported = [r.connector_id for r in plan.explanation.candidates]
        assert tried == reported[: len(tried)]
        assert tried[0] == plan.explanation.chosen
        assert accepted is not None
        assert accepted not in failing


# ------------------------------------------------------------------ random tables

FILTERS: tuple[Callable[[], RouteFilter], ...] = (
    lambda: country_in("GB"),
    lambda: country_in("FR"),
    lambda: country_in("GB", "FR"),
    lambda: prefix_in("+447"),
    lambda: prefix_in("+33", "+4420"),
    lambda: category_in(Category.OTP),
    lambda: category_in(Category.MARKETING, Category.TRANSACTIONAL),
    lambda: sender_kind_in(None, SenderKind.LONG_CODE),
    lambda: sender_kind_in(SenderKind.ALPHANUMERIC),
    lambda: time_window("08:00", "20:00", "Europe/Paris"),
    lambda: time_window("22:00", "06:00", "America/New_York"),
    lambda: tenant_is("ten_2"),
)

strategies_ = st.one_of(
    st.just(Priority()),
    st.just(Weighted()),
    st.builds(
        LeastCost,
        min_delivery_rate=st.sampled_from([None, 0.8, 0.95]),
        max_p90_latency=st.sampled_from([None, 10.0]),
        min_samples=st.sampled_from([1, 50]),
        otp_prefers_quality=st.booleans(),
        currency=st.sampled_from([None, "USD"]),
    ),
)


@st.composite
def routes(draw: st.DrawFn, index: int) -> Route:
    filters = draw(st.lists(st.sampled_from(FILTERS), max_size=3))
    names = draw(st.lists(st.sampled_from(CONNECTORS), min_size=1, max_size=4, unique=True))
    candidates = tuple(
        Candidate(name, weight=draw(st.integers(0, 5)), priority=draw(st.integers(0, 2)))
        for name in names
    )
    strategy: Strategy = draw(strategies_)
    if isinstance(strategy, Weighted) and not any(c.weight for c in candidates):
        strategy = Priority()
    tenant = draw(st.sampled_from([None, None, "ten_1", "ten_2"]))
    return Route(f"r{index}", tuple(f() for f in filters), candidates, strategy, tenant)


@st.composite
def tables(draw: st.DrawFn) -> RoutingTable:
    count = draw(st.integers(0, 8))
    default = Route(
        "default",
        (),
        (Candidate("e"), Candidate("a", priority=1)),
        draw(strategies_.filter(lambda s: not isinstance(s, Weighted))),
    )
    return RoutingTable([draw(routes(i)) for i in range(count)], default)


@st.composite
def contexts(draw: st.DrawFn) -> RouteContext:
    return context(
        destination=draw(st.sampled_from(DESTINATIONS)),
        tenant=draw(st.sampled_from(["ten_1", "ten_2", "ten_3"])),
        category=draw(st.sampled_from(list(Category))),
        sender=draw(st.sampled_from([None, *SenderKind])),
        now=T0 + timedelta(minutes=draw(st.integers(0, 48 * 60))),
        segments=draw(st.integers(1, 4)),
    )


price_lists = st.dictionaries(
    st.sampled_from(CONNECTORS),
    st.builds(
        lambda currency, country, prefix: PriceList(
            "x", currency, {"GB": country, "+4477": prefix, "FR": country + 7}
        ),
        st.sampled_from(["USD", "USD", "EUR"]),
        st.integers(0, 20_000),
        st.integers(0, 20_000),
    ),
)
qualities = st.dictionaries(
    st.sampled_from(CONNECTORS),
    st.builds(
        stats,
        st.floats(0, 1),
        st.integers(0, 200),
        st.floats(0.1, 60),
    ),
)


def reference_route(table: RoutingTable, ctx: RouteContext) -> Route:
    """The plain reading of the rules: tenant routes, then global, first full match, default."""
    ordered = [r for r in table.routes if r.tenant_id == ctx.tenant_id]
    ordered += [r for r in table.routes if r.tenant_id is None]
    for candidate_route in ordered:
        if all(f(ctx) for f in candidate_route.filters):
            return candidate_route
    return table.default


@settings(max_examples=300, deadline=None)
@given(
    table=tables(),
    ctx=contexts(),
    lists=price_lists,
    known=qualities,
    down=st.sets(st.sampled_from(CONNECTORS)),
    seed=st.integers(0, 2**32),
)
def test_explain_agrees_with_the_plan_for_random_tables(
    table: RoutingTable,
    ctx: RouteContext,
    lists: dict[str, PriceList],
    known: dict[str, QualityStats],
    down: set[str],
    seed: int,
) -> None:
    """For any table and message, explain names the plan's route, order and true reasons."""
    plan = table.plan(ctx, lists, Quality(known), lambda c: c not in down, random.Random(seed))
    explanation = plan.explanation
    route = reference_route(table, ctx)

    # The route: the one the plain reading of the rules picks, and explain's trail to it.
    assert plan.route is route
    assert explanation.route is route
    assert explanation.used_default is (route is table.default)
    checks = explanation.routes
    assert checks[-1].route_id == route.id
    assert checks[-1].matched
    expected_trail = [r for r in table.routes if r.tenant_id == ctx.tenant_id]
    expected_trail += [r for r in table.routes if r.tenant_id is None]
    trail_ids = [r.id for r in expected_trail]
    stop = trail_ids.index(route.id) if route.id in trail_ids else len(trail_ids)
    assert [c.route_id for c in checks[:-1]] == trail_ids[:stop]
    by_id = {r.id: r for r in table.routes}
    for check in checks[:-1]:
        assert not check.matched
        failing = [f for f in by_id[check.route_id].filters if describe(f) == check.failed_filter]
        assert failing
        assert not any(f(ctx) for f in failing)

    # The candidates: all kept, in the plan's order, available ones first.
    reports = explanation.candidates
    assert explanation.chosen == plan.order[0] == plan.chosen
    assert tuple(r.connector_id for r in reports) == plan.order
    assert sorted(plan.order) == sorted(c.connector_id for c in route.candidates)
    assert [r.position for r in reports] == list(range(len(reports)))
    assert [r.available for r in reports] == [c not in down for c in plan.order]
    assert [r.available for r in reports] == sorted((r.available for r in reports), reverse=True)
    assert reports[0].reason.startswith("first choice")
    for report in reports:
        assert report.quality is known.get(report.connector_id)
        price_list = lists.get(report.connector_id)
        expected_price = price_list.price_for(ctx.e164, ctx.country) if price_list else None
        assert report.price == expected_price
        if expected_price is not None:
            assert report.total_price == expected_price.times(ctx.segments)

    # The order within each availability group follows the strategy's stated rule.
    strategy = route.strategy
    if isinstance(strategy, LeastCost):
        currency = strategy.currency
        for candidate in route.candidates:
            listed = lists.get(candidate.connector_id)
            listed_price = listed.price_for(ctx.e164, ctx.country) if listed else None
            if currency is None and listed_price is not None:
                currency = listed_price.currency
    for group in (
        [r for r in reports if r.available],
        [r for r in reports if not r.available],
    ):
        if isinstance(strategy, Priority):
            assert [r.priority for r in group] == sorted(r.priority for r in group)
        elif isinstance(strategy, Weighted):
            rest = group[1:] if group and group[0].connector_id == explanation.drawn else group
            assert [r.weight for r in rest] == sorted((r.weight for r in rest), reverse=True)
        else:
            assert [r.guard for r in group] == [strategy.guard(r.quality) for r in group]
            fails = [r.guard is not None for r in group]
            assert fails == sorted(fails)
            passing = [r for r in group if r.guard is None]
            by_quality = strategy.otp_prefers_quality and ctx.category is Category.OTP
            assert explanation.strategy.endswith("quality" if by_quality else "cost")
            if by_quality:
                rates = [
                    r.quality.delivery_rate if strategy.known(r.quality) and r.quality else None
                    for r in passing
                ]
                known_rates = [rate for rate in rates if rate is not None]
                assert rates[: len(known_rates)] == known_rates  # known quality first
                assert known_rates == sorted(known_rates, reverse=True)
            else:
                comparable = [r.price is not None and r.price.currency == currency for r in passing]
                assert comparable == sorted(comparable, reverse=True)  # priced ones first
                micros = [
                    r.price.micros for r in passing if r.price and r.price.currency == currency
                ]
                assert micros == sorted(micros)
    if isinstance(strategy, Weighted) and any(
        c.weight and c.connector_id not in down for c in route.candidates
    ):
        assert explanation.drawn == plan.order[0]


def test_explain_of_a_priority_route_looks_its_figures_up_when_read() -> None:
    """A route that does not order by price or quality shows both once its report is read."""
    table = RoutingTable([], Route("default", (), (Candidate("a"), Candidate("b")), Priority()))
    window = QualityWindow(min_samples=1)
    window.record_outcome("b", True, 1.0, T0)
    lists = {"a": PriceList("a", "USD", {"GB": 3_000})}
    plan = table.plan(context(segments=2), lists, window, lambda _: True, random.Random(0))
    first, second = plan.explanation.candidates
    assert (first.connector_id, second.connector_id) == ("a", "b")
    assert first.price is not None
    assert first.price.micros == 3_000
    assert first.total_price is not None
    assert first.total_price.micros == 6_000
    assert first.quality is not None
    assert first.quality.outcomes == 0
    assert second.price is None
    assert second.quality is not None
    assert second.quality.outcomes == 1
