"""``quick_init``: the faster ``__init__`` of the frozen dataclasses made per request takes the
same arguments, makes the same objects and keeps them frozen."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from dataclasses import KW_ONLY, InitVar, dataclass, field
from typing import Any

import pytest

import magiclink_core.clients
import magiclink_core.delivery
import magiclink_core.domain.changes
import magiclink_core.domain.completion
import magiclink_core.domain.decisions
import magiclink_core.domain.events
import magiclink_core.emails.renderer
import magiclink_core.links
import magiclink_core.ports
from magiclink_core.domain.quick_init import quick_init


def shape(name: str) -> type:
    """One set of fields, made into a class twice: by dataclass alone, and with quick_init
    (named as the module names it, so that pickle finds it)."""

    class Shape:
        a: int
        b: str = "b"
        _: KW_ONLY
        c: tuple[int, ...] = ()
        d: float | None = None

    Shape.__name__ = Shape.__qualname__ = name
    return Shape


Plain: Any = dataclass(frozen=True, slots=True)(shape("Plain"))
Quicker: Any = quick_init(dataclass(frozen=True, slots=True)(shape("Quicker")))


@quick_init
@dataclass(frozen=True, slots=True)
class Checked:
    n: int

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("negative")


def test_it_takes_the_arguments_dataclass_init_takes() -> None:
    assert inspect.signature(Quicker.__init__) == inspect.signature(Plain.__init__)
    calls = [
        ((1,), {}),
        ((1, "x"), {}),
        ((1,), {"b": "y", "d": 2.5}),
        ((), {"a": 3, "c": (1, 2)}),
    ]
    for args, kwargs in calls:
        made, reference = Quicker(*args, **kwargs), Plain(*args, **kwargs)  # type: ignore[arg-type]
        assert dataclasses.astuple(made) == dataclasses.astuple(reference)
        assert repr(made) == repr(reference).replace("Plain", "Quicker")


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), ((1, "b", (2,)), {}), ((1,), {"e": 1}), ((1,), {"a": 1})],
    ids=["missing", "keyword-only given by position", "unknown", "given twice"],
)
def test_wrong_arguments_are_refused_as_dataclass_init_refuses_them(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> None:
    with pytest.raises(TypeError):
        Plain(*args, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Quicker(*args, **kwargs)  # type: ignore[arg-type]


def test_what_it_makes_stays_frozen_equal_hashable_copyable_and_picklable() -> None:
    made = Quicker(1, "x", c=(2,), d=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.a = 2  # type: ignore[misc]
    with pytest.raises((AttributeError, TypeError)):
        made.other = 1  # type: ignore[attr-defined]  # slotted: no new attributes either
    assert made == Quicker(1, "x", c=(2,), d=0.5) != Quicker(2, "x", c=(2,), d=0.5)
    assert hash(made) == hash(Quicker(1, "x", c=(2,), d=0.5))
    assert dataclasses.replace(made, a=5) == Quicker(5, "x", c=(2,), d=0.5)
    assert copy.copy(made) == made and copy.deepcopy(made) == made
    assert pickle.loads(pickle.dumps(made)) == made


def test_post_init_still_runs() -> None:
    assert Checked(1).n == 1
    with pytest.raises(ValueError, match="negative"):
        Checked(-1)


def test_classes_it_cannot_serve_are_refused_when_decorated() -> None:
    @dataclass(slots=True)
    class Mutable:
        a: int

    @dataclass(frozen=True)
    class Unslotted:
        a: int

    @dataclass(frozen=True, slots=True)
    class Factory:
        a: list[int] = field(default_factory=list)

    @dataclass(frozen=True, slots=True)
    class NotInit:
        a: int = field(default=0, init=False)

    @dataclass(frozen=True, slots=True)
    class WithInitVar:
        a: int
        b: InitVar[int]

        def __post_init__(self, b: int) -> None:
            pass

    for cls in (Mutable, Unslotted, Factory, NotInit, WithInitVar):
        with pytest.raises(TypeError):
            quick_init(cls)


SHIPPED = [
    magiclink_core.domain.changes.Insert,
    magiclink_core.domain.changes.Update,
    magiclink_core.domain.changes.Delete,
    magiclink_core.domain.decisions.ClickDecision,
    magiclink_core.domain.completion.Completion,
    magiclink_core.domain.events.AuthEvent,
    magiclink_core.ports.EmailMessage,
    magiclink_core.delivery.Parcel,
    magiclink_core.emails.renderer.LinkEmail,
    magiclink_core.emails.renderer.NoticeEmail,
    magiclink_core.links.LinkPreview,
    magiclink_core.links.LinkResult,
    magiclink_core.clients.ClientState,
]


@pytest.mark.parametrize("cls", SHIPPED, ids=lambda cls: cls.__name__)
def test_the_shipped_classes_take_what_their_fields_say(cls: type[object]) -> None:
    """Each class decorated in the library: its __init__ is the quick one, and it takes one
    parameter per field, with the field's default and keyword-only-ness."""
    # the quick one sets each field through its slot (dataclass's own calls object.__setattr__)
    assert {f"_set_{f.name}" for f in dataclasses.fields(cls)} <= set(  # type: ignore[arg-type]
        cls.__init__.__code__.co_names
    )
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    assert [p.name for p in parameters] == [f.name for f in fields if not f.kw_only] + [
        f.name for f in fields if f.kw_only
    ]
    for p in parameters:
        f = next(f for f in fields if f.name == p.name)
        expected = inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
        assert p.default == expected
        assert (p.kind is inspect.Parameter.KEYWORD_ONLY) == f.kw_only
