"""A saga: an ordered list of steps, the subject it serves, and how its status reaches that subject."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from itertools import groupby
from typing import TYPE_CHECKING, ClassVar

from provisioning.saga.steps import Step

if TYPE_CHECKING:
    from provisioning.models import Operation

_REGISTRY: dict[str, type[Saga]] = {}


@dataclass(frozen=True)
class StatusView:
    """What a subject shows: the operation's state and where it stands, for people."""

    state: str
    step: int  # 1-based index of the current step group, or the count once finished
    steps: int
    title: str
    message: str
    instructions: str
    error: str

    @property
    def progress(self) -> str:
        return f"step {self.step} of {self.steps}: {self.title}" if self.title else ""


class Saga:
    """Subclass with `kind` and `steps`; the class registers itself under `kind`.

    `write_status` is the hook through which the engine writes status onto the subject (an event, a
    reservation). It runs inside the transaction that changes the operation row, so the subject's
    status always equals the operation's.
    """

    kind: ClassVar[str] = ""
    steps: ClassVar[list[Step]] = []
    _groups: ClassVar[list[list[Step]]] = []
    _by_name: ClassVar[dict[str, Step]] = {}
    timeout: ClassVar[timedelta | None] = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.kind:
            return
        names = [s.name for s in cls.steps]
        if len(set(names)) != len(names) or not all(names):
            raise TypeError(f"saga {cls.kind}: step names must be unique and non-empty: {names}")
        ordered = sorted(cls.steps, key=lambda s: s.weight)
        cls._groups = [list(group) for _, group in groupby(ordered, key=lambda s: s.weight)]
        cls._by_name = {s.name: s for s in cls.steps}
        _REGISTRY[cls.kind] = cls

    @classmethod
    def groups(cls) -> list[list[Step]]:
        """Steps grouped by weight, in run order; a group of more than one runs in parallel."""
        return cls._groups

    @classmethod
    def step(cls, name: str) -> Step:
        try:
            return cls._by_name[name]
        except KeyError:
            raise KeyError(f"saga {cls.kind} has no step {name!r}") from None

    @classmethod
    def order(cls) -> list[str]:
        """Step names in run order (parallel groups in definition order)."""
        return [s.name for group in cls.groups() for s in group]

    def write_status(self, operation: Operation, view: StatusView) -> None:
        """Write `view` onto the subject. Called inside the operation's transaction."""


def saga_for(kind: str) -> Saga:
    try:
        return _REGISTRY[kind]()
    except KeyError:
        raise LookupError(f"no saga of kind {kind!r} is registered") from None


def registered_kinds() -> list[str]:
    return sorted(_REGISTRY)
