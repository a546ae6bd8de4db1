"""A saga: an ordered list of steps, the subject it serves, and how its status reaches that subject."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from itertools import groupby
from typing import TYPE_CHECKING, ClassVar

from provisioning.saga.steps import Step

if TYPE_CHECKING:
    from provisioning.models import Operation

_REGISTRY: dict[str, type[Saga]] = {}  # kind → the current definition
_VERSIONS: dict[tuple[str, str], type[Saga]] = {}  # (kind, version) → every definition the code has


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
    # The definition's version, recorded on every operation it starts; empty: a fingerprint of the
    # step names in run order, so that adding, removing or reordering steps makes a new version.
    version: ClassVar[str] = ""
    # False: an older definition kept in the code so that operations started on it finish on it.
    current: ClassVar[bool] = True
    # How operations of an older version move to this one: {old version: {old step: new step, or
    # None for a step that is gone (only one that never ran)}}; unnamed steps keep their names.
    upgrades: ClassVar[dict[str, dict[str, str | None]]] = {}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.kind:
            return
        cls._index()
        if not cls.__dict__.get("version"):
            cls.version = fingerprint(cls._groups)
        known = _VERSIONS.get((cls.kind, cls.version))
        if known is not None and known.order() != cls.order():
            raise TypeError(f"saga {cls.kind}: two definitions of version {cls.version} differ")
        _VERSIONS[(cls.kind, cls.version)] = cls
        if cls.current:
            _REGISTRY[cls.kind] = cls

    @classmethod
    def _index(cls) -> None:
        names = [s.name for s in cls.steps]
        if len(set(names)) != len(names) or not all(names):
            raise TypeError(f"saga {cls.kind}: step names must be unique and non-empty: {names}")
        ordered = sorted(cls.steps, key=lambda s: s.weight)
        cls._groups = [list(group) for _, group in groupby(ordered, key=lambda s: s.weight)]
        cls._by_name = {s.name: s for s in cls.steps}

    @classmethod
    def definition(cls) -> dict:
        """What an operation records of the definition it starts on."""
        return {"version": cls.version, "groups": [[s.name for s in group] for group in cls.groups()]}

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


def fingerprint(groups: list[list[Step]]) -> str:
    names = json.dumps([[s.name for s in group] for group in groups])
    return "h" + hashlib.sha256(names.encode()).hexdigest()[:10]


def saga_for(kind: str, version: str | None = None) -> Saga:
    """The current definition of `kind`, or its definition `version` if the code has it."""
    try:
        if version:
            return _VERSIONS[(kind, version)]()
        return _REGISTRY[kind]()
    except KeyError:
        what = f"version {version} of " if version else ""
        raise LookupError(f"no saga {what}of kind {kind!r} is registered") from None


def registered(kind: str, version: str) -> Saga | None:
    cls = _VERSIONS.get((kind, version))
    return cls() if cls is not None else None


class _RecordedStep(Step):
    """A step known only by the name an operation recorded: shown, never run."""

    def __init__(self, name: str, weight: int) -> None:
        self.name = name
        self.title = name
        self.weight = weight


class RecordedSaga(Saga):
    """A definition rebuilt from what an operation recorded, for an operation whose definition the
    running code no longer has: enough to show it and to hold it. Its status still reaches the subject
    through the current definition of its kind, when there is one."""

    @staticmethod
    def of(operation: Operation) -> RecordedSaga:
        recorded = (operation.definition or {}).get("groups") or [[name] for name in operation.steps]
        steps = [_RecordedStep(name, weight) for weight, group in enumerate(recorded, 1) for name in group]
        cls = type("Recorded", (RecordedSaga,), {"steps": steps})
        cls._index()
        cls.version = (operation.definition or {}).get("version", "")
        saga = cls()
        return saga

    def write_status(self, operation: Operation, view: StatusView) -> None:
        current = _REGISTRY.get(operation.kind)
        if current is not None:
            current().write_status(operation, view)


def registered_kinds() -> list[str]:
    return sorted(_REGISTRY)
