"""Routing: which connectors a message tries, in which order, and why.

A ``RoutingTable`` holds ordered ``Route`` s (global ones, and per-tenant overrides that are
looked at first) and a mandatory default route. The first route whose filters all match a
``RouteContext`` wins; its strategy orders its candidates into a failover list:

* ``Priority``: by candidate priority (lower first), then as listed;
* ``Weighted``: one candidate drawn by weight among the available ones, the rest by weight;
* ``LeastCost``: cheapest per segment by the connectors' price lists, candidates failing the
  quality guard after those passing it; for OTPs, best quality first (configurable).

Unavailable connectors (down, unbound, disabled) are never dropped: they move to the end, so a
plan always has somewhere to fail over to. ``plan`` returns the order together with an
``Explanation`` built from the very values that produced it, so the two cannot disagree.

Once a carrier accepted a message it is never sent to another (``may_reroute``).
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from itertools import accumulate
from typing import Any, ClassVar, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from pigeon.domain.addressing import SenderKind, normalise_region, parse_sender
from pigeon.domain.errors import InvalidSender
from pigeon.domain.messages import Category, Message, MessageStatus
from pigeon.domain.price_lists import PriceList, PriceMatch
from pigeon.domain.pricing import Money
from pigeon.domain.quality import QualityStats
from pigeon.domain.value_objects import value_object

# --------------------------------------------------------------------------- context


@value_object
class RouteContext:
    """What a routing decision looks at: one message about to be sent, at ``now`` (aware)."""

    e164: str
    country: str
    tenant_id: str
    category: Category
    sender_kind: SenderKind | None
    now: datetime
    segments: int = 1
    # Seconds since local midnight per time zone, filled by time windows: a table with many
    # windows in one zone converts ``now`` once per message, not once per route.
    _local: dict[ZoneInfo, int] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise ValueError("RouteContext.now must be an aware datetime (UTC)")
        if self.segments < 1:
            raise ValueError("a message has at least one segment")

    @classmethod
    def for_message(cls, message: Message, now: datetime) -> RouteContext:
        """The context of an outbound ``message``; its sender is classified when it has one."""
        kind: SenderKind | None = None
        if message.sender:
            try:
                kind = parse_sender(message.sender).kind
            except InvalidSender:
                kind = None
        country = normalise_region(message.country)
        if country is None:
            try:
                number = phonenumbers.parse(message.to, None)
                region = phonenumbers.region_code_for_number(number)
                code = number.country_code or 0
                country = region or phonenumbers.region_code_for_country_code(code)
            except phonenumbers.NumberParseException:
                country = "ZZ"
        # By position: a dataclass made by keyword costs about twice as much. Not ``max()``:
        # a builtin that takes keywords is called the slow way (session 46).
        segments = message.segments
        return cls(
            message.to,  # e164
            country,
            message.tenant_id,
            message.category,
            kind,  # sender_kind
            now,
            segments if segments > 1 else 1,
        )


# --------------------------------------------------------------------------- filters

#: Anything that says whether a route applies to a context. Filters built here also carry a
#: ``description`` (and say what they observed) for explain; plain callables work too.
RouteFilter = Callable[[RouteContext], bool]


class Filter:
    """A route filter with a description for explain; call it with a ``RouteContext``."""

    __slots__ = ("description",)

    def __init__(self, description: str) -> None:
        self.description = description

    def __call__(self, context: RouteContext) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def observed(self, context: RouteContext) -> str | None:
        """What this filter looked at in ``context``, for explain (``None`` if it cannot say)."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description}>"


class _CountryIn(Filter):
    __slots__ = ("countries",)

    def __init__(self, countries: frozenset[str]) -> None:
        super().__init__("country in " + ", ".join(sorted(countries)))
        self.countries = countries

    def __call__(self, context: RouteContext) -> bool:
        return context.country in self.countries

    def observed(self, context: RouteContext) -> str:
        return f"country {context.country}"


class _PrefixIn(Filter):
    __slots__ = ("prefixes",)

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__("prefix " + ", ".join(prefixes))
        self.prefixes = prefixes

    def __call__(self, context: RouteContext) -> bool:
        return context.e164.startswith(self.prefixes)

    def observed(self, context: RouteContext) -> str:
        return f"number {context.e164}"


class _TenantIs(Filter):
    __slots__ = ("tenant_id",)

    def __init__(self, tenant_id: str) -> None:
        super().__init__(f"tenant {tenant_id}")
        self.tenant_id = tenant_id

    def __call__(self, context: RouteContext) -> bool:
        return context.tenant_id == self.tenant_id

    def observed(self, context: RouteContext) -> str:
        return f"tenant {context.tenant_id}"


class _CategoryIn(Filter):
    __slots__ = ("categories",)

    def __init__(self, categories: frozenset[Category]) -> None:
        super().__init__("category in " + ", ".join(sorted(c.value for c in categories)))
        self.categories = categories

    def __call__(self, context: RouteContext) -> bool:
        return context.category in self.categories

    def observed(self, context: RouteContext) -> str:
        return f"category {context.category.value}"


class _SenderKindIn(Filter):
    __slots__ = ("kinds",)

    def __init__(self, kinds: frozenset[SenderKind | None]) -> None:
        names = sorted("none" if kind is None else kind.value for kind in kinds)
        super().__init__("sender kind in " + ", ".join(names))
        self.kinds = kinds

    def __call__(self, context: RouteContext) -> bool:
        return context.sender_kind in self.kinds

    def observed(self, context: RouteContext) -> str:
        kind = context.sender_kind
        return f"sender kind {'none' if kind is None else kind.value}"


class _TimeWindow(Filter):
    __slots__ = ("end", "start", "zone")

    def __init__(self, start: int, end: int, zone: ZoneInfo, text: str) -> None:
        super().__init__(f"time {text} {zone.key}")
        self.start = start
        self.end = end
        self.zone = zone

    def __call__(self, context: RouteContext) -> bool:
        second = context._local.get(self.zone)
        if second is None:
            local = context.now.astimezone(self.zone)
            second = local.hour * 3600 + local.minute * 60 + local.second
            context._local[self.zone] = second
        if self.start < self.end:
            return self.start <= second < self.end
        return second >= self.start or second < self.end

    def observed(self, context: RouteContext) -> str:
        return f"local time {context.now.astimezone(self.zone):%H:%M:%S} {self.zone.key}"


class _Where(Filter):
    __slots__ = ("predicate",)

    def __init__(self, description: str, predicate: RouteFilter) -> None:
        super().__init__(description)
        self.predicate = predicate

    def __call__(self, context: RouteContext) -> bool:
        return self.predicate(context)


def country_in(*countries: str) -> Filter:
    """Matches destinations in any of ``countries`` (ISO 3166 alpha-2, any case)."""
    regions = set()
    for country in countries:
        region = normalise_region(country)
        if region is None:
            raise ValueError(f"{country!r} is not an ISO 3166 alpha-2 country code")
        regions.add(region)
    if not regions:
        raise ValueError("country_in needs at least one country")
    return _CountryIn(frozenset(regions))


def prefix_in(*prefixes: str) -> Filter:
    """Matches destinations whose E.164 number starts with any of ``prefixes`` (``"+4477"``)."""
    normal = []
    for prefix in prefixes:
        digits = prefix.strip().removeprefix("+")
        if not digits.isdigit() or not digits.isascii() or len(digits) > 15:
            raise ValueError(f"{prefix!r} is not an E.164 prefix such as +4477")
        normal.append("+" + digits)
    if not normal:
        raise ValueError("prefix_in needs at least one prefix")
    return _PrefixIn(tuple(dict.fromkeys(normal)))


def tenant_is(tenant_id: str) -> Filter:
    """Matches messages of one tenant."""
    if not tenant_id:
        raise ValueError("tenant_is needs a tenant id")
    return _TenantIs(tenant_id)


def category_in(*categories: Category) -> Filter:
    """Matches messages of any of ``categories`` (OTP, transactional, marketing)."""
    if not categories:
        raise ValueError("category_in needs at least one category")
    return _CategoryIn(frozenset(Category(c) for c in categories))


def sender_kind_in(*kinds: SenderKind | None) -> Filter:
    """Matches senders of any of ``kinds``; ``None`` matches messages without a sender."""
    if not kinds:
        raise ValueError("sender_kind_in needs at least one sender kind")
    return _SenderKindIn(frozenset(None if k is None else SenderKind(k) for k in kinds))


def _seconds_of_day(value: time | str) -> tuple[int, str]:
    moment = time.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is not None:
        raise ValueError("time_window bounds are wall-clock times; give the zone as tz")
    text = f"{moment:%H:%M:%S}" if moment.second else f"{moment:%H:%M}"
    return moment.hour * 3600 + moment.minute * 60 + moment.second, text


def time_window(start: time | str, end: time | str, tz: str | ZoneInfo = "UTC") -> Filter:
    """Matches when the local wall-clock time in ``tz`` is in ``[start, end)``.

    ``start`` after ``end`` wraps midnight (``"22:00"`` to ``"06:00"``). Wall-clock time means
    a window follows daylight saving time: 09:00-17:00 Europe/London is 08:00-16:00 UTC in
    summer. Bounds are ``datetime.time`` values or ``"HH:MM[:SS]"`` strings.
    """
    first, first_text = _seconds_of_day(start)
    last, last_text = _seconds_of_day(end)
    if first == last:
        raise ValueError("an empty time window never matches; drop the filter for all day")
    if isinstance(tz, ZoneInfo):
        zone = tz
    else:
        try:
            zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {tz!r}") from exc
    return _TimeWindow(first, last, zone, f"{first_text}-{last_text}")


def where(description: str, predicate: RouteFilter) -> Filter:
    """Any predicate on a ``RouteContext`` as a described filter."""
    return _Where(description, predicate)


def describe(route_filter: RouteFilter) -> str:
    """The explain text of a filter: its description, else its name."""
    if isinstance(route_filter, Filter):
        return route_filter.description
    return getattr(route_filter, "__name__", None) or repr(route_filter)


# --------------------------------------------------------------------------- strategies


@dataclass(frozen=True, slots=True)
class Candidate:
    """A connector a route may use; ``weight`` serves ``Weighted``, ``priority`` ``Priority``."""

    connector_id: str
    weight: int = 1
    priority: int = 0

    def __post_init__(self) -> None:
        if not self.connector_id:
            raise ValueError("a candidate needs a connector id")
        if not isinstance(self.weight, int) or isinstance(self.weight, bool) or self.weight < 0:
            raise ValueError(f"weight of {self.connector_id} must be a non-negative int")


@dataclass(frozen=True, slots=True)
class Priority:
    """Candidates by ascending ``priority``, ties as listed; the rest are failover."""

    name: ClassVar[str] = "priority"


@dataclass(frozen=True, slots=True)
class Weighted:
    """One candidate drawn by weight among available ones; the rest by descending weight."""

    name: ClassVar[str] = "weighted"


@dataclass(frozen=True, slots=True)
class LeastCost:
    """Cheapest per segment first, with a quality guard; OTPs may rank by quality instead.

    A candidate with at least ``min_samples`` outcomes in the quality window fails the guard
    when its delivery rate is below ``min_delivery_rate`` or its p90 receipt latency is above
    ``max_p90_latency`` seconds (``None`` disables either check). Failing candidates are not
    dropped: they follow the passing ones, cheapest first, so failover still has them.
    Candidates with too few samples pass (that is how a new or recovered carrier is probed).

    Prices are compared in ``currency`` (default: that of the first priced candidate as
    listed); a candidate without a price for the destination, or priced in another currency,
    comes after the priced ones.

    With ``otp_prefers_quality``, OTPs are ranked by delivery rate (descending), then p90
    latency (ascending), then price; candidates of unknown quality come after known ones.
    """

    name: ClassVar[str] = "least_cost"

    min_delivery_rate: float | None = 0.9
    max_p90_latency: float | None = None
    min_samples: int = 20
    otp_prefers_quality: bool = True
    currency: str | None = None

    def __post_init__(self) -> None:
        if self.min_delivery_rate is not None and not 0 <= self.min_delivery_rate <= 1:
            raise ValueError("min_delivery_rate is a fraction between 0 and 1")
        if self.max_p90_latency is not None and self.max_p90_latency <= 0:
            raise ValueError("max_p90_latency is a positive number of seconds")
        if self.min_samples < 1:
            raise ValueError("min_samples must be at least 1")

    def known(self, stats: QualityStats | None) -> bool:
        """Whether ``stats`` hold enough outcomes to judge a connector by."""
        return stats is not None and stats.outcomes >= self.min_samples

    def guard(self, stats: QualityStats | None) -> str | None:
        """Why ``stats`` fail the quality guard, or ``None`` when they pass (or are too few)."""
        if stats is None or stats.outcomes < self.min_samples:
            return None
        rate = stats.delivery_rate
        floor = self.min_delivery_rate
        if floor is not None and rate is not None and rate < floor:
            return f"delivery rate {rate:.1%} below {floor:.1%} over {stats.outcomes} outcomes"
        p90 = stats.p90_latency
        if self.max_p90_latency is not None and p90 is not None and p90 > self.max_p90_latency:
            return f"p90 latency {p90:.1f} s above {self.max_p90_latency:g} s"
        return None


Strategy = Priority | Weighted | LeastCost


# --------------------------------------------------------------------------- routes


@dataclass(frozen=True, slots=True)
class Route:
    """An entry of the routing table: filters (all must match), candidates and a strategy.

    A route with a ``tenant_id`` applies to that tenant only and is looked at before global
    routes.
    """

    id: str
    filters: tuple[RouteFilter, ...]
    candidates: tuple[Candidate, ...]
    strategy: Strategy = field(default_factory=Priority)
    tenant_id: str | None = None
    # Derived once, so planning never re-sorts what does not depend on the message.
    _tests: tuple[RouteFilter, ...] = field(init=False, repr=False, compare=False)
    _by_priority: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _by_weight: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _cumulative: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("a route needs an id")
        filters = tuple(self.filters)
        candidates = tuple(self.candidates)
        if not candidates:
            raise ValueError(f"route {self.id} has no candidates")
        ids = [c.connector_id for c in candidates]
        if len(set(ids)) != len(ids):
            raise ValueError(f"route {self.id} lists a connector twice")
        if isinstance(self.strategy, Weighted) and not any(c.weight for c in candidates):
            raise ValueError(f"weighted route {self.id} needs a candidate with positive weight")
        indices = range(len(candidates))
        setter = object.__setattr__
        setter(self, "filters", filters)
        # A bound ``__call__`` is called about twice as fast as the instance itself.
        setter(self, "_tests", tuple(f.__call__ if isinstance(f, Filter) else f for f in filters))
        setter(self, "candidates", candidates)
        setter(
            self,
            "_by_priority",
            tuple(sorted(indices, key=lambda i: (candidates[i].priority, i))),
        )
        setter(
            self,
            "_by_weight",
            tuple(
                sorted(indices, key=lambda i: (-candidates[i].weight, candidates[i].priority, i))
            ),
        )
        setter(self, "_cumulative", tuple(accumulate(c.weight for c in candidates)))


class RoutingTable:
    """Ordered routes, tenant overrides first, and a default route that always matches."""

    def __init__(self, routes: Iterable[Route], default: Route | None) -> None:
        if default is None:
            raise ValueError("a routing table needs a default route")
        if default.filters or default.tenant_id is not None:
            raise ValueError("the default route must match everything: no filters, no tenant")
        self._routes = tuple(routes)
        ids = [route.id for route in self._routes] + [default.id]
        if len(set(ids)) != len(ids):
            raise ValueError("route ids must be unique in a routing table")
        self._default = default
        tenants: dict[str, list[Route]] = {}
        for route in self._routes:
            if route.tenant_id is not None:
                tenants.setdefault(route.tenant_id, []).append(route)
        self._tenant = {tenant: _Group(tuple(routes)) for tenant, routes in tenants.items()}
        self._global = _Group(tuple(route for route in self._routes if route.tenant_id is None))

    @property
    def routes(self) -> tuple[Route, ...]:
        """The routes in table order (tenant and global mixed, as given)."""
        return self._routes

    @property
    def default(self) -> Route:
        """The route used when no other matches."""
        return self._default

    def sequence(self, tenant_id: str) -> tuple[Route, ...]:
        """The routes a message of ``tenant_id`` is matched against, in order (then the default)."""
        own = self._tenant.get(tenant_id)
        return (own.routes if own else ()) + self._global.routes

    def _match(self, context: RouteContext, checks: list[tuple[Route, RouteFilter]]) -> Route:
        """The first matching route; routes ruled out by a filter go into ``checks`` with it.

        Routes whose country filters exclude the destination are skipped by an index without
        being called; explain reports them from the same index (see ``Explanation.routes``).
        """
        country = context.country
        own = self._tenant.get(context.tenant_id)
        shared = self._global.for_country(country)
        for group in (own.for_country(country), shared) if own is not None else (shared,):
            for route in group:
                for test in route._tests:
                    if not test(context):
                        checks.append((route, test))
                        break
                else:
                    return route
        return self._default

    def match(self, context: RouteContext) -> Route:
        """The route ``context`` takes: tenant overrides, then global routes, then the default."""
        return self._match(context, [])

    def plan(
        self,
        context: RouteContext,
        prices: Mapping[str, PriceList],
        quality: QualitySource,
        available: Callable[[str], bool],
        rng: random.Random,
    ) -> RoutePlan:
        """The failover order of connectors for ``context``, the route chosen and why.

        Only ``LeastCost`` orders by prices and quality figures: it looks them up for every
        candidate here. For the other strategies the explanation looks them up when its
        candidates are first read (explain shows them), not every dispatch.
        """
        checks: list[tuple[Route, RouteFilter]] = []
        route = self._match(context, checks)
        candidates = route.candidates
        if len(candidates) == 1:  # most routes: no comprehension, no reordering
            only = candidates[0]
            facts = [_Fact(0, only, available(only.connector_id))]
        else:
            facts = [
                _Fact(i, candidate, available(candidate.connector_id))
                for i, candidate in enumerate(candidates)
            ]
        strategy = route.strategy
        draw: tuple[int, int] | None = None
        by_quality = False
        figures: tuple[Mapping[str, PriceList], QualitySource] | None = (prices, quality)
        if isinstance(strategy, Priority):
            ranked = facts if len(facts) == 1 else [facts[i] for i in route._by_priority]
        elif isinstance(strategy, Weighted):
            ranked, draw = _weighted(route, facts, rng)
        else:
            _look_up(facts, context, prices, quality)
            figures = None
            ranked, by_quality = _least_cost(strategy, context, facts)
        ordered = ranked
        for fact in ranked:
            if not fact.available:  # the unavailable ones last, in their order
                ordered = [f for f in ranked if f.available]
                ordered.extend([f for f in ranked if not f.available])
                break
        explanation = Explanation(self, context, route, checks, ordered, draw, by_quality, figures)
        if len(ordered) == 1:
            order: tuple[str, ...] = (ordered[0].candidate.connector_id,)
        else:
            order = tuple([f.candidate.connector_id for f in ordered])
        return RoutePlan(route, order, explanation)


def _look_up(
    facts: Iterable[_Fact],
    context: RouteContext,
    prices: Mapping[str, PriceList],
    quality: QualitySource,
) -> None:
    """Each candidate's price for the destination and its quality figures as of the context."""
    e164, country, now = context.e164, context.country, context.now
    for fact in facts:
        price_list = prices.get(fact.candidate.connector_id)
        if price_list is not None:
            fact.price = price_list.match(e164, country)
        fact.stats = quality.stats(fact.candidate.connector_id, now)


def _countries(route: Route) -> frozenset[str] | None:
    """The only countries a route can match by its country filters, or ``None`` if any."""
    allowed: frozenset[str] | None = None
    for route_filter in route.filters:
        if isinstance(route_filter, _CountryIn):
            countries = route_filter.countries
            allowed = countries if allowed is None else allowed & countries
    return allowed


class _Group:
    """Routes in table order, indexed by the countries their country filters allow."""

    __slots__ = ("_anywhere", "_by_country", "routes")

    def __init__(self, routes: tuple[Route, ...]) -> None:
        self.routes = routes
        allowed = [_countries(route) for route in routes]
        mentioned = set().union(*(a for a in allowed if a is not None))
        self._anywhere = tuple(r for r, a in zip(routes, allowed, strict=True) if a is None)
        self._by_country = {
            country: tuple(
                r for r, a in zip(routes, allowed, strict=True) if a is None or country in a
            )
            for country in mentioned
        }

    def for_country(self, country: str) -> tuple[Route, ...]:
        """The routes that may match a destination in ``country``, in table order."""
        return self._by_country.get(country, self._anywhere)


class QualitySource(Protocol):
    """Recent delivery statistics of a connector (``QualityWindow`` answers for 1 h)."""

    def stats(self, connector_id: str, now: datetime) -> QualityStats | None:
        """The connector's record up to ``now``, or ``None`` when nothing is known."""
        ...


# --------------------------------------------------------------------------- ordering


class _Fact:
    """What planning learnt about one candidate; ordering and explain both read it."""

    __slots__ = ("available", "candidate", "comparable", "guard", "index", "price", "stats")

    def __init__(self, index: int, candidate: Candidate, available: bool) -> None:
        self.index = index
        self.candidate = candidate
        self.available = available
        self.price: PriceMatch | None = None
        self.stats: QualityStats | None = None
        self.comparable = False
        self.guard: str | None = None


def _weighted(
    route: Route, facts: list[_Fact], rng: random.Random
) -> tuple[list[_Fact], tuple[int, int]]:
    """One candidate drawn by weight among the available ones, then the rest by weight.

    Returns the order and the draw: the index of the candidate drawn and the total weight.
    """
    cumulative = route._cumulative
    for fact in facts:  # a loop, not all() over a generator: this runs for every dispatch
        if not fact.available:
            cumulative = tuple(accumulate(f.candidate.weight if f.available else 0 for f in facts))
            if not cumulative[-1]:
                cumulative = route._cumulative  # nothing available: draw among them all anyway
            break
    total = cumulative[-1]
    drawn = bisect_right(cumulative, rng.randrange(total))  # integers: exact, never past the end
    ranked = [facts[drawn]]
    if len(facts) > 1:
        ranked.extend([facts[i] for i in route._by_weight if i != drawn])
    return ranked, (drawn, total)


def _least_cost(
    strategy: LeastCost, context: RouteContext, facts: list[_Fact]
) -> tuple[list[_Fact], bool]:
    """Candidates by guard, then price (or quality first, for OTPs: the returned flag)."""
    currency = strategy.currency
    for fact in facts:
        price = fact.price
        if price is not None:
            if currency is None:
                currency = price.price.currency
            fact.comparable = price.price.currency == currency
        fact.guard = strategy.guard(fact.stats)
    by_quality = strategy.otp_prefers_quality and context.category is Category.OTP
    if by_quality:
        facts.sort(key=lambda f: _quality_key(strategy, f))
    else:
        facts.sort(key=_cost_key)
    return facts, by_quality


_NO_PRICE = 1 << 62


def _cost_key(fact: _Fact) -> tuple[bool, int, int, int]:
    price = fact.price.price.micros if fact.price is not None and fact.comparable else _NO_PRICE
    return (fact.guard is not None, price, fact.candidate.priority, fact.index)


def _quality_key(strategy: LeastCost, fact: _Fact) -> tuple[Any, ...]:
    stats = fact.stats
    if stats is None or not strategy.known(stats) or stats.delivery_rate is None:
        return (fact.guard is not None, True, 0.0, 0.0, *_cost_key(fact)[1:])
    p90 = stats.p90_latency if stats.p90_latency is not None else float("inf")
    return (fact.guard is not None, False, -stats.delivery_rate, p90, *_cost_key(fact)[1:])


# --------------------------------------------------------------------------- plans and explain


@dataclass(frozen=True, slots=True)
class RouteCheck:
    """One route looked at for a message: whether it matched, else the filter that failed."""

    route_id: str
    tenant_id: str | None
    matched: bool
    failed_filter: str | None = None
    observed: str | None = None


@dataclass(frozen=True, slots=True)
class CandidateReport:
    """One candidate of the chosen route, where it ended up in the failover order and why."""

    connector_id: str
    position: int
    available: bool
    weight: int
    priority: int
    price: Money | None
    price_key: str | None
    total_price: Money | None
    quality: QualityStats | None
    guard: str | None
    reason: str


class Explanation:
    """Why a plan is what it is: routes examined, and every candidate with its figures.

    It is built from the values that ordered the candidates (prices, quality figures, the
    weighted draw), so ``chosen`` is ``plan.order[0]`` and ``candidates`` follow ``plan.order``.
    The reports are rendered on first access only, keeping planning cheap; a route that does
    not order by prices and quality (priority, weighted) has them looked up then too.
    """

    __slots__ = (
        "_by_quality",
        "_candidates",
        "_checks",
        "_draw",
        "_facts",
        "_figures",
        "_routes",
        "_table",
        "context",
        "route",
    )

    def __init__(
        self,
        table: RoutingTable,
        context: RouteContext,
        route: Route,
        checks: list[tuple[Route, RouteFilter]],
        facts: list[_Fact],
        draw: tuple[int, int] | None,
        by_quality: bool,
        figures: tuple[Mapping[str, PriceList], QualitySource] | None = None,
    ) -> None:
        self.context = context
        self.route = route
        self._table = table
        self._checks = checks
        self._facts = facts
        self._draw = draw
        self._by_quality = by_quality
        #: Where the candidates' prices and quality figures are still to be looked up (a
        #: strategy that does not order by them), or ``None`` once they are in the facts.
        self._figures = figures
        self._routes: tuple[RouteCheck, ...] | None = None
        self._candidates: tuple[CandidateReport, ...] | None = None

    @property
    def chosen(self) -> str:
        """The connector tried first."""
        return self._facts[0].candidate.connector_id

    @property
    def used_default(self) -> bool:
        """Whether no route matched and the default route was taken."""
        return self.route is self._table.default

    @property
    def strategy(self) -> str:
        """The chosen route's strategy: ``priority``, ``weighted``, ``least_cost/cost|quality``."""
        name = self.route.strategy.name
        if isinstance(self.route.strategy, LeastCost):
            return f"{name}/{'quality' if self._by_quality else 'cost'}"
        return name

    @property
    def drawn(self) -> str | None:
        """For a weighted route, the connector the weighted draw picked."""
        if self._draw is None:
            return None
        return self.route.candidates[self._draw[0]].connector_id

    @property
    def routes(self) -> tuple[RouteCheck, ...]:
        """The routes looked at, in the order they were, ending with the one chosen."""
        if self._routes is None:
            context = self.context
            failed = {id(route): test for route, test in self._checks}
            examined = []
            for route in self._table.sequence(context.tenant_id):
                if route is self.route:
                    break
                found = failed.get(id(route))
                if found is not None:
                    test = route.filters[route._tests.index(found)]
                else:  # skipped by the country index: a country filter excludes it
                    test = next(
                        f for f in route.filters if isinstance(f, _CountryIn) and not f(context)
                    )
                observed = test.observed(context) if isinstance(test, Filter) else None
                examined.append(
                    RouteCheck(route.id, route.tenant_id, False, describe(test), observed)
                )
            examined.append(RouteCheck(self.route.id, self.route.tenant_id, True))
            self._routes = tuple(examined)
        return self._routes

    @property
    def candidates(self) -> tuple[CandidateReport, ...]:
        """The candidates in failover order, with price, quality and the reason for the place."""
        if self._candidates is None:
            if self._figures is not None:
                _look_up(self._facts, self.context, *self._figures)
                self._figures = None
            segments = self.context.segments
            reports = []
            for position, fact in enumerate(self._facts):
                price = fact.price.price if fact.price is not None else None
                reports.append(
                    CandidateReport(
                        connector_id=fact.candidate.connector_id,
                        position=position,
                        available=fact.available,
                        weight=fact.candidate.weight,
                        priority=fact.candidate.priority,
                        price=price,
                        price_key=fact.price.key if fact.price is not None else None,
                        total_price=price.times(segments) if price is not None else None,
                        quality=fact.stats,
                        guard=fact.guard,
                        reason=self._reason(position, fact),
                    )
                )
            self._candidates = tuple(reports)
        return self._candidates

    def _reason(self, position: int, fact: _Fact) -> str:
        strategy = self.route.strategy
        role = "first choice" if position == 0 else f"failover #{position}"
        if isinstance(strategy, Priority):
            why = f"priority {fact.candidate.priority}, listed #{fact.index + 1}"
        elif isinstance(strategy, Weighted):
            drawn, total = self._draw or (-1, 0)
            if fact.index == drawn:
                why = f"drawn by weight {fact.candidate.weight} of {total}"
            else:
                why = f"by weight {fact.candidate.weight}"
        else:
            why = self._least_cost_reason(strategy, fact)
        if not fact.available:
            why = f"unavailable (down, unbound or disabled), moved last; {why}"
        return f"{role}: {why}"

    def _least_cost_reason(self, strategy: LeastCost, fact: _Fact) -> str:
        if fact.price is None:
            price = "no price for this destination"
        elif not fact.comparable:
            price = f"priced in {fact.price.price.currency}, not comparable"
        else:
            price = f"{fact.price.price.as_decimal_string()} {fact.price.price.currency}/segment"
            price += f" ({fact.price.kind} {fact.price.key})"
        parts = []
        if fact.guard is not None:
            parts.append(f"fails quality guard: {fact.guard}")
        if self._by_quality:
            stats = fact.stats
            if stats is None or not strategy.known(stats) or stats.delivery_rate is None:
                outcomes = 0 if stats is None else stats.outcomes
                parts.append(f"OTP by quality: unknown ({outcomes} outcomes)")
            else:
                p90 = "n/a" if stats.p90_latency is None else f"{stats.p90_latency:.1f} s"
                parts.append(f"OTP by quality: delivery {stats.delivery_rate:.1%}, p90 {p90}")
        elif fact.guard is None:
            parts.append("passes quality guard")
        parts.append(price)
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form for the explain endpoint."""

        def money(value: Money | None) -> dict[str, str] | None:
            if value is None:
                return None
            return {"amount": value.as_decimal_string(), "currency": value.currency}

        def quality(stats: QualityStats | None) -> dict[str, Any] | None:
            if stats is None:
                return None
            return {
                "submitted": stats.submitted,
                "delivered": stats.delivered,
                "failed": stats.failed,
                "delivery_rate": stats.delivery_rate,
                "p50_latency": stats.p50_latency,
                "p90_latency": stats.p90_latency,
                "errors_by_code": dict(stats.errors_by_code),
            }

        return {
            "route": self.route.id,
            "tenant_override": self.route.tenant_id is not None,
            "default": self.used_default,
            "strategy": self.strategy,
            "chosen": self.chosen,
            "routes": [
                {
                    "route": check.route_id,
                    "tenant_id": check.tenant_id,
                    "matched": check.matched,
                    "failed_filter": check.failed_filter,
                    "observed": check.observed,
                }
                for check in self.routes
            ],
            "candidates": [
                {
                    "connector": report.connector_id,
                    "position": report.position,
                    "available": report.available,
                    "weight": report.weight,
                    "priority": report.priority,
                    "price": money(report.price),
                    "price_key": report.price_key,
                    "total_price": money(report.total_price),
                    "quality": quality(report.quality),
                    "guard": report.guard,
                    "reason": report.reason,
                }
                for report in self.candidates
            ],
        }

    def __str__(self) -> str:
        lines = [f"route {self.route.id} ({self.strategy}) -> {self.chosen}"]
        for check in self.routes[:-1]:
            seen = f" ({check.observed})" if check.observed else ""
            lines.append(f"  skipped {check.route_id}: {check.failed_filter}{seen}")
        lines.extend(f"  {r.position}. {r.connector_id}: {r.reason}" for r in self.candidates)
        return "\n".join(lines)


@value_object
class RoutePlan:
    """The route chosen for a message and its connectors in failover order."""

    route: Route
    order: tuple[str, ...]
    explanation: Explanation

    @property
    def chosen(self) -> str:
        """The connector tried first."""
        return self.order[0]


# --------------------------------------------------------------------------- failover

#: Statuses that mean a carrier took the message: from then on it is that carrier's alone.
_ACCEPTED = frozenset(
    {
        MessageStatus.SENT,
        MessageStatus.DELIVERED,
        MessageStatus.UNDELIVERED,
        MessageStatus.EXPIRED,
        MessageStatus.UNKNOWN,
    }
)


def accepted_by(message: Message) -> str | None:
    """The connector whose carrier accepted ``message``, or ``None`` if none did yet.

    ``message.connector_id`` alone is not enough: it also names a connector that only failed.
    A carrier accepted the message once it holds a carrier message id or has passed ``sent``.
    """
    if message.status in _ACCEPTED:
        return message.connector_id
    for part in message.parts:  # a loop, not any() over a generator: once per dispatch
        if part.carrier_message_id:
            return message.connector_id
    return None


def may_reroute(accepted: str | None) -> bool:
    """Whether a message may go to another connector: only if no carrier accepted it yet."""
    return accepted is None


def next_candidate(
    plan: RoutePlan, tried: Collection[str], *, accepted: str | None = None
) -> str | None:
    """The connector to fail over to, or ``None`` when none is left or a carrier has the message.

    Call it when a submit failed on the route's side: a temporary failure past its retry
    budget, a permanent failure that is the route's fault, throttling for too long, or a
    connector down or unbound. It never waits for the first carrier to come back.
    """
    if not may_reroute(accepted):
        return None
    for connector_id in plan.order:
        if connector_id not in tried:
            return connector_id
    return None
