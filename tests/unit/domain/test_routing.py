"""Routing: filters, table order, tenant overrides, strategies and failover."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, time, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pigeon.domain.addressing import SenderKind
from pigeon.domain.messages import Category, Direction, Message, MessageStatus, Part
from pigeon.domain.price_lists import PriceList
from pigeon.domain.quality import QualityStats, QualityWindow
from pigeon.domain.routing import (
    Candidate,
    LeastCost,
    Priority,
    Route,
    RouteContext,
    RoutePlan,
    RoutingTable,
    Strategy,
    Weighted,
    accepted_by,
    category_in,
    country_in,
    describe,
    may_reroute,
    next_candidate,
    prefix_in,
    sender_kind_in,
    tenant_is,
    time_window,
    where,
)

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
GB = "+447700900123"


def context(
    e164: str = GB,
    country: str = "GB",
    tenant: str = "ten_1",
    category: Category = Category.TRANSACTIONAL,
    sender: SenderKind | None = SenderKind.ALPHANUMERIC,
    now: datetime = T0,
    segments: int = 1,
) -> RouteContext:
    return RouteContext(e164, country, tenant, category, sender, now, segments)


def stats(rate: float | None, outcomes: int = 100, p90: float | None = 5.0) -> QualityStats:
    delivered = round((rate or 0) * outcomes)
    return QualityStats(
        outcomes, delivered, outcomes - delivered, rate, p90, p90, MappingProxyType({})
    )


class Quality:
    """A fixed quality source: a dict of connector -> stats."""

    def __init__(self, known: Mapping[str, QualityStats] | None = None) -> None:
        self.known = dict(known or {})

    def stats(self, connector_id: str, now: datetime) -> QualityStats | None:
        return self.known.get(connector_id)


def everything(_: str) -> bool:
    return True


def prices(**micros: int) -> dict[str, PriceList]:
    return {name: PriceList(name, "USD", {"GB": value}) for name, value in micros.items()}


def route(
    route_id: str,
    *connectors: str,
    filters: tuple[Callable[[RouteContext], bool], ...] = (),
    strategy: Strategy | None = None,
    tenant: str | None = None,
) -> Route:
    return Route(
        route_id,
        filters,
        tuple(Candidate(c) for c in connectors),
        strategy or Priority(),
        tenant,
    )


DEFAULT = route("default", "fallback")


def plan(
    table: RoutingTable,
    ctx: RouteContext | None = None,
    *,
    price_lists: Mapping[str, PriceList] | None = None,
    quality: Quality | QualityWindow | None = None,
    available: Callable[[str], bool] = everything,
    rng: random.Random | None = None,
) -> RoutePlan:
    return table.plan(
        ctx or context(),
        price_lists or {},
        quality if quality is not None else Quality(),
        available,
        rng or random.Random(0),
    )


# ------------------------------------------------------------------ filters


def test_country_filter_matches_listed_countries_in_any_case() -> None:
    """country_in('gb', 'IE') matches GB and IE destinations only."""
    f = country_in("gb", "IE")
    assert f(context(country="GB"))
    assert f(context(country="IE"))
    assert not f(context(country="FR"))
    assert f.description == "country in GB, IE"


def test_prefix_filter_matches_number_prefixes() -> None:
    """prefix_in matches numbers starting with any prefix, given with or without '+'."""
    f = prefix_in("+4477", "4478")
    assert f(context(e164="+447700900123"))
    assert f(context(e164="+447800900123"))
    assert not f(context(e164="+447900900123"))
    assert f.description == "prefix +4477, +4478"


def test_tenant_category_and_sender_kind_filters() -> None:
    """tenant_is, category_in and sender_kind_in look at their own field of the context."""
    assert tenant_is("ten_1")(context(tenant="ten_1"))
    assert not tenant_is("ten_1")(context(tenant="ten_2"))
    otp = category_in(Category.OTP)
    assert otp(context(category=Category.OTP))
    assert not otp(context(category=Category.MARKETING))
    numeric = sender_kind_in(SenderKind.LONG_CODE, SenderKind.SHORT_CODE)
    assert numeric(context(sender=SenderKind.SHORT_CODE))
    assert not numeric(context(sender=SenderKind.ALPHANUMERIC))


def test_sender_kind_none_matches_messages_without_a_sender() -> None:
    """None among the kinds matches a message sent with the connector's default sender."""
    f = sender_kind_in(None)
    assert f(context(sender=None))
    assert not f(context(sender=SenderKind.ALPHANUMERIC))
    assert f.description == "sender kind in none"


@pytest.mark.parametrize(
    "build",
    [
        lambda: country_in(),
        lambda: country_in("GBR"),
        lambda: prefix_in(),
        lambda: prefix_in("+44a"),
        lambda: prefix_in("+" + "1" * 16),
        lambda: tenant_is(""),
        lambda: category_in(),
        lambda: category_in("spam"),  # type: ignore[arg-type]
        lambda: sender_kind_in(),
        lambda: time_window("09:00", "09:00"),
        lambda: time_window("09:00", "17:00", "Mars/Olympus_Mons"),
        lambda: time_window(time(9, tzinfo=UTC), time(17)),
        lambda: time_window("9 o'clock", "17:00"),
    ],
)
def test_filter_constructors_reject_nonsense(build: Callable[[], object]) -> None:
    """Empty sets, malformed values, empty windows and unknown zones raise ValueError."""
    with pytest.raises(ValueError):  # noqa: PT011 - each case fails for its own reason
        build()


def test_time_window_inside_and_outside() -> None:
    """09:00-17:00 UTC matches from 09:00 up to, not including, 17:00."""
    f = time_window("09:00", "17:00")
    day = datetime(2026, 3, 2, tzinfo=UTC)
    assert not f(context(now=day.replace(hour=8, minute=59, second=59)))
    assert f(context(now=day.replace(hour=9)))
    assert f(context(now=day.replace(hour=16, minute=59, second=59)))
    assert not f(context(now=day.replace(hour=17)))
    assert f.description == "time 09:00-17:00 UTC"


def test_time_window_wraps_midnight() -> None:
    """22:00-06:00 matches late evening and early morning, not the day."""
    f = time_window(time(22), time(6))
    day = datetime(2026, 3, 2, tzinfo=UTC)
    assert f(context(now=day.replace(hour=23, minute=30)))
    assert f(context(now=day.replace(hour=0)))
    assert f(context(now=day.replace(hour=5, minute=59)))
    assert not f(context(now=day.replace(hour=6)))
    assert not f(context(now=day.replace(hour=12)))
    assert f(context(now=day.replace(hour=22)))


def test_time_window_is_wall_clock_in_its_zone() -> None:
    """A Tokyo night window 22:00-06:00 matches 14:00 UTC (23:00 JST), across midnight UTC."""
    f = time_window("22:00", "06:00", "Asia/Tokyo")
    assert f(context(now=datetime(2026, 3, 2, 14, 0, tzinfo=UTC)))
    assert f(context(now=datetime(2026, 3, 2, 20, 59, tzinfo=UTC)))
    assert not f(context(now=datetime(2026, 3, 2, 21, 0, tzinfo=UTC)))
    assert not f(context(now=datetime(2026, 3, 2, 12, 59, tzinfo=UTC)))


def test_time_window_follows_daylight_saving_time() -> None:
    """09:00-17:00 London is 09:00 UTC before the spring change and 08:00 UTC from that day."""
    office = time_window("09:00", "17:00", "Europe/London")
    # Clocks go forward at 01:00 UTC on Sunday 29 March 2026.
    assert not office(context(now=datetime(2026, 3, 28, 8, 30, tzinfo=UTC)))  # 08:30 GMT
    assert office(context(now=datetime(2026, 3, 29, 8, 30, tzinfo=UTC)))  # 09:30 BST
    assert not office(context(now=datetime(2026, 3, 29, 16, 0, tzinfo=UTC)))  # 17:00 BST
    assert office(context(now=datetime(2026, 3, 28, 16, 0, tzinfo=UTC)))  # 16:00 GMT
    # Clocks go back at 01:00 UTC on Sunday 25 October 2026; 01:30 local happens twice.
    night = time_window("01:00", "02:00", "Europe/London")
    assert night(context(now=datetime(2026, 10, 25, 0, 30, tzinfo=UTC)))  # 01:30 BST
    assert night(context(now=datetime(2026, 10, 25, 1, 30, tzinfo=UTC)))  # 01:30 GMT
    assert not night(context(now=datetime(2026, 10, 25, 2, 0, tzinfo=UTC)))  # 02:00 GMT


@given(
    start=st.times().map(lambda t: t.replace(microsecond=0)),
    end=st.times().map(lambda t: t.replace(microsecond=0)),
    moment=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
    ),
    zone=st.sampled_from(["UTC", "Europe/London", "America/New_York", "Asia/Kolkata"]),
)
def test_time_window_agrees_with_a_plain_reading(
    start: time, end: time, moment: datetime, zone: str
) -> None:
    """For any window and instant, the filter agrees with comparing local wall-clock times."""
    if start == end:
        return
    local = moment.astimezone(ZoneInfo(zone)).time().replace(microsecond=0, tzinfo=None)
    inside = start <= local < end if start < end else local >= start or local < end
    assert time_window(start, end, zone)(context(now=moment)) is inside


def test_where_wraps_any_predicate_with_a_description() -> None:
    """where() gives a custom predicate a description; a bare function is described by name."""
    long_ones = where("three segments or more", lambda ctx: ctx.segments >= 3)
    assert long_ones(context(segments=3))
    assert not long_ones(context(segments=1))
    assert describe(long_ones) == "three segments or more"

    def is_weekend(ctx: RouteContext) -> bool:
        return ctx.now.weekday() >= 5

    assert describe(is_weekend) == "is_weekend"


# ------------------------------------------------------------------ the table


def test_first_matching_route_wins() -> None:
    """Of two matching routes the earlier in the table is taken."""
    table = RoutingTable(
        [
            route("fr", "a", filters=(country_in("FR"),)),
            route("uk-otp", "b", filters=(country_in("GB"), category_in(Category.OTP))),
            route("uk", "c", filters=(country_in("GB"),)),
            route("uk-too", "d", filters=(prefix_in("+44"),)),
        ],
        DEFAULT,
    )
    assert plan(table).route.id == "uk"
    assert plan(table, context(category=Category.OTP)).route.id == "uk-otp"


def test_route_matches_only_when_all_filters_do() -> None:
    """Filters combine with all-of: one failing filter rules the route out."""
    table = RoutingTable(
        [route("uk-night", "a", filters=(country_in("GB"), time_window("22:00", "06:00")))],
        DEFAULT,
    )
    assert plan(table, context(now=T0.replace(hour=23))).route.id == "uk-night"
    assert plan(table, context(now=T0.replace(hour=12))).route.id == "default"


def test_tenant_override_takes_precedence() -> None:
    """A tenant's own route wins over an earlier global route that also matches."""
    table = RoutingTable(
        [
            route("uk", "global-carrier", filters=(country_in("GB"),)),
            route("acme-uk", "acme-carrier", filters=(country_in("GB"),), tenant="ten_acme"),
        ],
        DEFAULT,
    )
    acme = plan(table, context(tenant="ten_acme"))
    assert (acme.route.id, acme.chosen) == ("acme-uk", "acme-carrier")
    other = plan(table, context(tenant="ten_other"))
    assert (other.route.id, other.chosen) == ("uk", "global-carrier")


def test_tenant_falls_back_to_global_routes_then_default() -> None:
    """When no tenant route matches, global routes apply, then the default route."""
    table = RoutingTable(
        [
            route("acme-uk", "acme-carrier", filters=(country_in("GB"),), tenant="ten_acme"),
            route("fr", "fr-carrier", filters=(country_in("FR"),)),
        ],
        DEFAULT,
    )
    assert plan(table, context(tenant="ten_acme", country="FR")).route.id == "fr"
    fallback = plan(table, context(tenant="ten_acme", country="DE"))
    assert (fallback.route.id, fallback.chosen) == ("default", "fallback")
    assert fallback.explanation.used_default


def test_default_route_when_nothing_matches() -> None:
    """With no matching route the default route is taken."""
    table = RoutingTable([route("fr", "a", filters=(country_in("FR"),))], DEFAULT)
    chosen = plan(table)
    assert chosen.route is DEFAULT
    assert chosen.order == ("fallback",)
    assert table.match(context(country="FR")).id == "fr"


def test_a_default_route_is_mandatory() -> None:
    """A table without a default route, or whose default could fail to match, is refused."""
    with pytest.raises(ValueError, match="default route"):
        RoutingTable([], None)
    with pytest.raises(ValueError, match="match everything"):
        RoutingTable([], route("d", "a", filters=(country_in("GB"),)))
    with pytest.raises(ValueError, match="match everything"):
        RoutingTable([], route("d", "a", tenant="ten_1"))


def test_route_ids_are_unique_in_a_table() -> None:
    """Two routes with one id would make explain ambiguous, so the table refuses them."""
    with pytest.raises(ValueError, match="unique"):
        RoutingTable([route("x", "a"), route("x", "b")], DEFAULT)
    with pytest.raises(ValueError, match="unique"):
        RoutingTable([route("default", "a")], DEFAULT)


@pytest.mark.parametrize(
    ("build", "complaint"),
    [
        (lambda: Route("", (), (Candidate("a"),)), "needs an id"),
        (lambda: Route("r", (), ()), "no candidates"),
        (lambda: Route("r", (), (Candidate("a"), Candidate("a"))), "twice"),
        (lambda: Route("r", (), (Candidate("a", weight=0),), Weighted()), "positive weight"),
        (lambda: Candidate("a", weight=-1), "non-negative"),
        (lambda: Candidate(""), "connector id"),
        (lambda: LeastCost(min_delivery_rate=1.5), "fraction"),
        (lambda: LeastCost(max_p90_latency=0), "positive"),
        (lambda: LeastCost(min_samples=0), "at least 1"),
    ],
)
def test_routes_and_strategies_validate_themselves(
    build: Callable[[], object], complaint: str
) -> None:
    """Routes need an id and distinct candidates; weights and guards must make sense."""
    with pytest.raises(ValueError, match=complaint):
        build()


# ------------------------------------------------------------------ priority and failover


def test_priority_failover_order() -> None:
    """Candidates are tried by ascending priority, ties in the order listed."""
    r = Route(
        "uk",
        (),
        (Candidate("c", priority=2), Candidate("a"), Candidate("b"), Candidate("d", priority=1)),
    )
    assert plan(RoutingTable([r], DEFAULT)).order == ("a", "b", "d", "c")


def test_next_candidate_walks_the_failover_order() -> None:
    """Each failed connector hands over to the next untried one, then there is none."""
    r = route("uk", "a", "b", "c")
    chosen = plan(RoutingTable([r], DEFAULT))
    assert next_candidate(chosen, []) == "a"
    assert next_candidate(chosen, {"a"}) == "b"
    assert next_candidate(chosen, ["a", "b"]) == "c"
    assert next_candidate(chosen, ["a", "b", "c"]) is None


def test_never_rerouted_once_a_carrier_accepted() -> None:
    """After a carrier accepted the message no other connector is offered."""
    chosen = plan(RoutingTable([route("uk", "a", "b")], DEFAULT))
    assert may_reroute(None)
    assert not may_reroute("a")
    assert next_candidate(chosen, {"a"}, accepted="a") is None
    assert next_candidate(chosen, {"a"}, accepted=None) == "b"


def make_message(status: MessageStatus, parts: list[Part] | None = None) -> Message:
    return Message(
        id="msg_1",
        tenant_id="ten_1",
        direction=Direction.MT,
        to=GB,
        sender="Pigeon",
        body="hi",
        category=Category.OTP,
        encoding="gsm7",
        segments=1,
        status=status,
        created_at=T0,
        updated_at=T0,
        connector_id="a",
        parts=parts or [],
    )


@pytest.mark.parametrize(
    ("status", "parts", "accepted"),
    [
        (MessageStatus.QUEUED, None, None),
        (MessageStatus.FAILED, None, None),
        (MessageStatus.SENDING, [Part(0, MessageStatus.SENT, "c1")], "a"),
        (MessageStatus.SENT, None, "a"),
        (MessageStatus.DELIVERED, None, "a"),
        (MessageStatus.UNKNOWN, None, "a"),
    ],
)
def test_accepted_by_reads_the_message(
    status: MessageStatus, parts: list[Part] | None, accepted: str | None
) -> None:
    """A connector that only failed did not accept; one with a carrier id or a sent status did."""
    assert accepted_by(make_message(status, parts)) == accepted


# ------------------------------------------------------------------ weighted


def test_weighted_split_is_within_5_percent_of_weights_over_10000_messages() -> None:
    """Over 10,000 plans a 50/30/20 split lands within 5% (relative) of each weight."""
    r = Route(
        "split",
        (),
        (Candidate("a", weight=50), Candidate("b", weight=30), Candidate("c", weight=20)),
        Weighted(),
    )
    table = RoutingTable([r], DEFAULT)
    rng = random.Random(20260302)
    firsts = Counter(plan(table, rng=rng).chosen for _ in range(10_000))
    for connector, weight in (("a", 0.5), ("b", 0.3), ("c", 0.2)):
        assert abs(firsts[connector] / 10_000 - weight) <= 0.05 * weight


def test_weighted_failover_follows_descending_weight() -> None:
    """After the drawn candidate, the others follow by descending weight."""
    r = Route(
        "split",
        (),
        (Candidate("a", weight=1), Candidate("b", weight=5), Candidate("c", weight=3)),
        Weighted(),
    )
    table = RoutingTable([r], DEFAULT)
    for seed in range(20):
        order = plan(table, rng=random.Random(seed)).order
        rest = [c for c in ("b", "c", "a") if c != order[0]]
        assert list(order[1:]) == rest


def test_weighted_draws_only_among_available_connectors() -> None:
    """A down connector's share goes to the others; it is kept last for failover."""
    r = Route(
        "split",
        (),
        (Candidate("a", weight=50), Candidate("b", weight=50), Candidate("c", weight=50)),
        Weighted(),
    )
    table = RoutingTable([r], DEFAULT)
    rng = random.Random(1)
    plans = [plan(table, available=lambda c: c != "a", rng=rng) for _ in range(2000)]
    firsts = Counter(p.chosen for p in plans)
    assert firsts["a"] == 0
    assert abs(firsts["b"] - 1000) < 100
    assert all(p.order[-1] == "a" for p in plans)


def test_weighted_with_one_candidate_plans_it_up_or_down() -> None:
    """A weighted route of one connector plans that connector alone, available or not, and
    its explanation names it as the draw."""
    r = Route("one", (), (Candidate("a", weight=3),), Weighted())
    table = RoutingTable([r], DEFAULT)
    for up in (True, False):
        planned = plan(table, available=lambda _, up=up: up, rng=random.Random(5))
        assert planned.order == ("a",)
        assert planned.chosen == "a"


def test_weighted_zero_weight_is_failover_only() -> None:
    """A candidate of weight 0 is never drawn but remains a failover target."""
    r = Route("split", (), (Candidate("a", weight=0), Candidate("b", weight=1)), Weighted())
    table = RoutingTable([r], DEFAULT)
    assert {plan(table, rng=random.Random(s)).order for s in range(50)} == {("b", "a")}


def test_weighted_still_draws_when_nothing_is_available() -> None:
    """With every connector down the draw uses all weights, so there is still a first try."""
    r = Route("split", (), (Candidate("a", weight=1), Candidate("b", weight=1)), Weighted())
    table = RoutingTable([r], DEFAULT)
    firsts = {
        plan(table, available=lambda _: False, rng=random.Random(s)).chosen for s in range(50)
    }
    assert firsts == {"a", "b"}


# ------------------------------------------------------------------ least cost


def cheap_and_dear(strategy: LeastCost | None = None) -> RoutingTable:
    uk = route("uk", "dear", "cheap", filters=(country_in("GB"),), strategy=strategy or LeastCost())
    return RoutingTable([uk], DEFAULT)


def test_least_cost_picks_the_cheapest() -> None:
    """The cheapest connector for the destination comes first, dearer ones after."""
    chosen = plan(cheap_and_dear(), price_lists=prices(dear=9_000, cheap=4_000))
    assert chosen.order == ("cheap", "dear")


def test_least_cost_prices_by_longest_prefix() -> None:
    """Prices come from each connector's longest matching prefix for the number."""
    lists = {
        "dear": PriceList("dear", "USD", {"GB": 9_000, "+4477": 1_000}),
        "cheap": PriceList("cheap", "USD", {"GB": 4_000}),
    }
    assert plan(cheap_and_dear(), price_lists=lists).order == ("dear", "cheap")
    landline = context(e164="+442079460000")
    assert plan(cheap_and_dear(), landline, price_lists=lists).order == ("cheap", "dear")


def feed(window: QualityWindow, connector: str, at: datetime, delivered: int, failed: int) -> None:
    for n in range(delivered + failed):
        window.record_submit(connector, at)
        window.record_outcome(connector, n < delivered, 4.0, at)


def test_least_cost_switches_below_the_guard_and_back_when_it_recovers() -> None:
    """Cheapest first until its delivery rate falls below the guard; back once it recovers."""
    table = cheap_and_dear(LeastCost(min_delivery_rate=0.9, min_samples=20))
    lists = prices(dear=9_000, cheap=4_000)
    window = QualityWindow()

    def first(at: datetime) -> str:
        return plan(table, context(now=at), price_lists=lists, quality=window).chosen

    feed(window, "cheap", T0, delivered=95, failed=5)
    assert first(T0) == "cheap"
    feed(window, "cheap", T0 + timedelta(minutes=5), delivered=0, failed=20)  # 95 of 120
    assert first(T0 + timedelta(minutes=5)) == "dear"
    assert plan(table, context(now=T0), price_lists=lists, quality=window).order[1] == "cheap"
    # It recovers: new traffic delivers well and lifts the rate over the guard again.
    feed(window, "cheap", T0 + timedelta(minutes=10), delivered=80, failed=0)  # 175 of 200
    assert first(T0 + timedelta(minutes=10)) == "dear"
    feed(window, "cheap", T0 + timedelta(minutes=11), delivered=60, failed=0)  # 235 of 260
    assert first(T0 + timedelta(minutes=11)) == "cheap"


def test_least_cost_probes_again_once_bad_outcomes_leave_the_window() -> None:
    """A guarded-out carrier gets traffic back when its failures age out of the 1 h window."""
    table = cheap_and_dear(LeastCost(min_delivery_rate=0.9, min_samples=20))
    lists = prices(dear=9_000, cheap=4_000)
    window = QualityWindow()
    feed(window, "cheap", T0, delivered=10, failed=40)
    assert plan(table, price_lists=lists, quality=window).chosen == "dear"
    later = context(now=T0 + timedelta(minutes=61))
    assert plan(table, later, price_lists=lists, quality=window).chosen == "cheap"


def test_least_cost_simulation_follows_the_carriers_quality() -> None:
    """Sending through the plan, the cheap carrier carries traffic until it degrades."""
    table = cheap_and_dear(LeastCost(min_delivery_rate=0.9, min_samples=50))
    lists = prices(dear=9_000, cheap=4_000)
    window = QualityWindow()
    rng = random.Random(5)
    chosen_by_minute: dict[int, Counter[str]] = {}
    for second in range(0, 3 * 3600, 10):
        now = T0 + timedelta(seconds=second)
        minute = second // 60
        chosen = plan(table, context(now=now), price_lists=lists, quality=window).chosen
        chosen_by_minute.setdefault(minute, Counter())[chosen] += 1
        # The cheap carrier delivers 99% for the first hour, then 50% for 30 minutes.
        broken = 3600 <= second < 5400
        delivered = rng.random() < (0.5 if broken and chosen == "cheap" else 0.99)
        window.record_submit(chosen, now)
        window.record_outcome(chosen, delivered, rng.uniform(2, 8), now)

    def share(minutes: range, connector: str) -> float:
        counts = sum((chosen_by_minute[m] for m in minutes), Counter[str]())
        return counts[connector] / sum(counts.values())

    assert share(range(60), "cheap") == 1.0
    assert share(range(75, 90), "dear") == 1.0  # guarded out while broken
    assert share(range(170, 180), "cheap") == 1.0  # failures aged out; healthy again


def test_latency_guard_moves_slow_carriers_back() -> None:
    """A p90 receipt latency above max_p90_latency fails the guard like a low rate does."""
    table = cheap_and_dear(LeastCost(min_delivery_rate=None, max_p90_latency=30, min_samples=10))
    quality = Quality({"cheap": stats(0.99, p90=45.0), "dear": stats(0.99, p90=5.0)})
    chosen = plan(table, price_lists=prices(dear=9_000, cheap=4_000), quality=quality)
    assert chosen.order == ("dear", "cheap")
    assert chosen.explanation.candidates[1].guard == "p90 latency 45.0 s above 30 s"


def test_guard_ignores_connectors_with_too_few_samples() -> None:
    """Below min_samples a bad rate is noise: the candidate is not held back."""
    table = cheap_and_dear(LeastCost(min_delivery_rate=0.9, min_samples=50))
    quality = Quality({"cheap": stats(0.1, outcomes=49)})
    chosen = plan(table, price_lists=prices(dear=9_000, cheap=4_000), quality=quality)
    assert chosen.chosen == "cheap"


def test_guard_failing_candidates_stay_as_failover_cheapest_first() -> None:
    """When every candidate fails the guard they are all kept, cheapest first."""
    uk = route("uk", "x", "y", "z", strategy=LeastCost(min_samples=1))
    quality = Quality({c: stats(0.5) for c in "xyz"})
    chosen = plan(RoutingTable([uk], DEFAULT), price_lists=prices(x=3, y=1, z=2), quality=quality)
    assert chosen.order == ("y", "z", "x")


def test_unpriced_candidates_come_after_priced_ones() -> None:
    """A connector with no price list or no price for the destination is tried last."""
    uk = route("uk", "none", "elsewhere", "priced", strategy=LeastCost())
    lists = {
        "elsewhere": PriceList("elsewhere", "USD", {"FR": 1}),
        "priced": PriceList("priced", "USD", {"GB": 10_000}),
    }
    assert plan(RoutingTable([uk], DEFAULT), price_lists=lists).order == (
        "priced",
        "none",
        "elsewhere",
    )


def test_prices_in_another_currency_are_not_compared() -> None:
    """Prices in a currency other than the comparison currency rank as unpriced."""
    lists = {
        "usd": PriceList("usd", "USD", {"GB": 9_000}),
        "eur": PriceList("eur", "EUR", {"GB": 1_000}),
    }
    table = RoutingTable([route("uk", "usd", "eur", strategy=LeastCost())], DEFAULT)
    chosen = plan(table, price_lists=lists)
    assert chosen.order == ("usd", "eur")
    assert "not comparable" in chosen.explanation.candidates[1].reason
    in_eur = RoutingTable([route("uk", "usd", "eur", strategy=LeastCost(currency="EUR"))], DEFAULT)
    assert plan(in_eur, price_lists=lists).order == ("eur", "usd")


def test_otp_prefers_quality_over_cost() -> None:
    """For OTPs, least cost orders by delivery rate, then p90 latency, then price."""
    uk = route("uk", "cheap", "fast", "best", strategy=LeastCost(min_delivery_rate=0.5))
    table = RoutingTable([uk], DEFAULT)
    quality = Quality(
        {
            "cheap": stats(0.92, p90=6.0),
            "fast": stats(0.97, p90=2.0),
            "best": stats(0.97, p90=3.0),
        }
    )
    lists = prices(cheap=1_000, fast=8_000, best=5_000)
    otp = plan(table, context(category=Category.OTP), price_lists=lists, quality=quality)
    assert otp.order == ("fast", "best", "cheap")
    assert otp.explanation.strategy == "least_cost/quality"
    bulk = plan(table, context(category=Category.MARKETING), price_lists=lists, quality=quality)
    assert bulk.order == ("cheap", "best", "fast")
    assert bulk.explanation.strategy == "least_cost/cost"


def test_otp_quality_ties_are_broken_by_price() -> None:
    """Two OTP candidates of equal rate and latency go cheapest first."""
    uk = route("uk", "dear", "cheap", strategy=LeastCost())
    quality = Quality({"dear": stats(0.97, p90=2.0), "cheap": stats(0.97, p90=2.0)})
    chosen = plan(
        RoutingTable([uk], DEFAULT),
        context(category=Category.OTP),
        price_lists=prices(dear=2, cheap=1),
        quality=quality,
    )
    assert chosen.order == ("cheap", "dear")


def test_otp_puts_unknown_quality_after_known_quality() -> None:
    """An OTP goes to carriers with a known record first; a new carrier comes after them."""
    uk = route("uk", "new", "proven", strategy=LeastCost(min_samples=20))
    quality = Quality({"new": stats(1.0, outcomes=3), "proven": stats(0.95)})
    chosen = plan(
        RoutingTable([uk], DEFAULT),
        context(category=Category.OTP),
        price_lists=prices(new=1, proven=2),
        quality=quality,
    )
    assert chosen.order == ("proven", "new")


def test_otp_quality_preference_can_be_turned_off() -> None:
    """With otp_prefers_quality=False OTPs are routed by cost like everything else."""
    uk = route("uk", "good", "cheap", strategy=LeastCost(otp_prefers_quality=False))
    quality = Quality({"good": stats(0.99), "cheap": stats(0.91)})
    chosen = plan(
        RoutingTable([uk], DEFAULT),
        context(category=Category.OTP),
        price_lists=prices(good=9, cheap=1),
        quality=quality,
    )
    assert chosen.order == ("cheap", "good")


# ------------------------------------------------------------------ availability


@pytest.mark.parametrize("strategy", [Priority(), Weighted(), LeastCost()])
def test_unavailable_connectors_are_moved_last(strategy: Strategy) -> None:
    """Down or unbound connectors are kept, after every available one, in strategy order."""
    uk = route("uk", "a", "b", "c", "d", strategy=strategy)
    table = RoutingTable([uk], DEFAULT)
    lists = prices(a=1, b=2, c=3, d=4)
    chosen = plan(table, price_lists=lists, available=lambda c: c in ("b", "d"))
    assert set(chosen.order[:2]) == {"b", "d"}
    assert set(chosen.order[2:]) == {"a", "c"}
    if not isinstance(strategy, Weighted):
        assert chosen.order == ("b", "d", "a", "c")
    reports = chosen.explanation.candidates
    assert [r.available for r in reports] == [True, True, False, False]
    assert "unavailable" in reports[3].reason


# ------------------------------------------------------------------ context


def test_context_from_a_message() -> None:
    """A message's number, country, tenant, category, sender kind and segments feed routing."""
    message = make_message(MessageStatus.QUEUED)
    message.segments = 3
    ctx = RouteContext.for_message(message, T0)
    assert (ctx.e164, ctx.country, ctx.tenant_id) == (GB, "GB", "ten_1")
    assert (ctx.category, ctx.sender_kind, ctx.segments) == (
        Category.OTP,
        SenderKind.ALPHANUMERIC,
        3,
    )
    message.country = "gb"
    message.sender = "12345"
    assert RouteContext.for_message(message, T0).sender_kind is SenderKind.SHORT_CODE
    message.sender = None
    message.country = None
    message.to = "+33612345678"
    ctx = RouteContext.for_message(message, T0)
    assert (ctx.country, ctx.sender_kind) == ("FR", None)
    message.sender = "!!"
    message.to = "nonsense"
    odd = RouteContext.for_message(message, T0)
    assert (odd.country, odd.sender_kind) == ("ZZ", None)


def test_context_needs_an_aware_time_and_a_segment() -> None:
    """A naive now or zero segments are refused: routing time is UTC, injected."""
    with pytest.raises(ValueError, match="aware"):
        context(now=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="segment"):
        context(segments=0)
