"""The benchmark table's ratios: a figure beside a target shows the side of the line that its
verdict found, and looks as it always did away from the line; and the variants compared take
their turns in an order drawn each round, the same in every run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import pytest
from benchmarks._harness import ratio, side_by_side, side_by_side_sync
from hypothesis import given
from hypothesis import strategies as st

LINES = [1.0, 1.05, 1.10, 2.0, 3.0, 6.0, 10.0]
TIMES = "\N{MULTIPLICATION SIGN}"  # what the tables write after a ratio


def shown(text: str) -> float:
    assert text.endswith(TIMES)
    return float(text[:-1])


@given(
    line=st.sampled_from(LINES),
    offset=st.floats(min_value=-0.2, max_value=0.2).filter(lambda x: abs(x) >= 1e-5),
    places=st.sampled_from([1, 2]),
    b=st.floats(min_value=1e-6, max_value=1e3),
)
def test_a_figure_near_its_line_shows_the_side_its_verdict_found(
    line: float, offset: float, places: int, b: float
) -> None:
    a = line * (1 + offset) * b
    over = a / b > line
    figure = shown(ratio(a, b, line=line, places=places))
    assert (figure > line) == over, (a / b, figure)
    assert figure != line


@pytest.mark.parametrize(
    ("a", "b", "line", "places", "expected"),
    [
        (3.0, 2.0, None, 2, "1.50" + TIMES),
        (3.0, 2.0, 1.05, 2, "1.50" + TIMES),  # far from its line: two places as before
        (1.054, 1.0, 1.05, 2, "1.054" + TIMES),
        (1.046, 1.0, 1.05, 2, "1.046" + TIMES),
        (1.05, 1.0, 1.05, 2, "1.05" + TIMES),  # on the line exactly: met, as it reads
        (2.96, 1.0, 3.0, 1, "2.96" + TIMES),
        (6.5, 1.0, 6.0, 1, "6.5" + TIMES),
    ],
)
def test_the_places_shown(
    a: float, b: float, line: float | None, places: int, expected: str
) -> None:
    assert ratio(a, b, line=line, places=places) == expected


def turns_taken(names: list[str], rounds: int) -> tuple[list[str], list[str]]:
    """The order in which ``side_by_side`` and ``side_by_side_sync`` ran one call of each
    variant per round."""
    ran_async: list[str] = []
    ran_sync: list[str] = []

    def async_call(name: str) -> Callable[[], Awaitable[object]]:
        async def call() -> None:
            ran_async.append(name)

        return call

    def sync_call(name: str) -> Callable[[], None]:
        return lambda: ran_sync.append(name)

    variants = {name: async_call(name) for name in names}
    anyio.run(lambda: side_by_side(variants, n=1, rounds=rounds))
    side_by_side_sync({name: sync_call(name) for name in names}, n=1, rounds=rounds)
    return ran_async, ran_sync


@given(names=st.lists(st.text(min_size=1, max_size=8), min_size=3, max_size=8, unique=True))
def test_the_variants_take_turns_in_orders_drawn_each_round(names: list[str]) -> None:
    rounds = 12
    for ran in turns_taken(names, rounds):
        orders = [ran[i : i + len(names)] for i in range(0, len(ran), len(names))]
        assert len(orders) == rounds
        assert all(sorted(order) == sorted(names) for order in orders)  # each variant once
        # not a fixed order, where one variant would always run right after the same one
        assert len({tuple(order) for order in orders}) > 1
    assert turns_taken(names, rounds) == turns_taken(names, rounds)  # repeatable
