"""The benchmark table's ratios: a figure beside a target shows the side of the line that its
verdict found, and looks as it always did away from the line."""

from __future__ import annotations

import pytest
from benchmarks._harness import ratio
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
