"""Property-based test of the engine's invariants (hypothesis, stateful).

The broker is the one part replaced: messages the engine sends are captured at Celery's `apply_async`
(outside our code) and delivered by the test in any order, twice, or never, and a worker may "die"
between a step acting and its outcome being recorded. The engine code that runs is the real one
(claims, records, chords' joins, compensation, the sweeper) against PostgreSQL.

Invariants: every operation ends in a final state once messages flow and the sweeper runs; a
finished step never runs again and no attempt runs twice; exactly the finished steps are compensated,
in reverse order; the subject's status always equals the operation's state.
"""

import os
import time
from dataclasses import dataclass, field

import pytest
from celery import canvas
from django.conf import settings
from django.db import transaction
from hypothesis import HealthCheck, note
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from provisioning.models import Operation
from provisioning.saga import runner
from provisioning.services import ServiceError, operation_cancel, operation_signal
from tests import sagas

pytestmark = pytest.mark.django_db(transaction=True)

ACTIONS = st.sampled_from(["done", "done", "done", "retry:0", "fail", "error", "wait:approve:0.2"])
PLANS = st.fixed_dictionaries(
    {name: st.lists(ACTIONS, min_size=1, max_size=3) for name in ("m1", "m2", "m3", "m4")}
)


@dataclass
class Message:
    signature: canvas.Signature
    rest: tuple = ()
    chord: dict | None = None  # shared by a chord's header: how many are left, its body and what follows
    done: bool = field(default=False)


def expand(sig, rest: tuple = ()) -> list[Message]:
    if isinstance(sig, canvas._chain):
        tasks = list(sig.tasks)
        return expand(tasks[0], tuple(tasks[1:]) + rest)
    if isinstance(sig, canvas._chord):
        shared = {"left": len(sig.tasks), "body": sig.body, "rest": rest}
        return [Message(h, chord=shared) for h in sig.tasks]
    return [Message(sig, rest)]


class Broker:
    """Captures what the engine sends."""

    def __init__(self) -> None:
        self.queue: list[Message] = []
        self.originals = {}

    def install(self) -> None:
        broker = self

        def capture(sig, *args, **kwargs):
            broker.queue.extend(expand(sig))

        for cls in (canvas.Signature, canvas._chain, canvas._chord):
            self.originals[cls] = cls.__dict__.get("apply_async")
            cls.apply_async = capture

    def uninstall(self) -> None:
        for cls, original in self.originals.items():
            if original is None:
                del cls.apply_async
            else:
                cls.apply_async = original

    def execute(self, message: Message) -> None:
        name, args = message.signature.task, list(message.signature.args)
        if name == "provisioning.run_steps":
            go_on = runner.execute_segment(*args)
        elif name == "provisioning.run_step":
            go_on = runner.execute_step(*args)
        elif name == "provisioning.join_group":
            go_on = runner.join_group(*args)
        elif name == "provisioning.compensate":
            while runner.compensate_next(*args) == 0:
                pass
            go_on = False
        else:
            raise AssertionError(f"unexpected task {name}")
        if message.chord is not None:
            # Like a result backend's chord counter: every delivery counts, duplicates included.
            message.chord["left"] -= 1
            if message.chord["left"] == 0:
                self.queue.extend(expand(message.chord["body"], message.chord["rest"]))
            return
        if go_on and message.rest:
            self.queue.extend(expand(message.rest[0], message.rest[1:]))


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.broker = Broker()
        self.broker.install()
        self.ops: list[str] = []

    @initialize(plans=st.lists(PLANS, min_size=1, max_size=3))
    def start(self, plans) -> None:
        for plan in plans:
            with transaction.atomic():
                op = runner.start(kind="test_model", data={"plan": plan})
            self.ops.append(str(op.pk))
        note(f"plans: {plans}")

    @precondition(lambda self: self.broker.queue)
    @rule(data=st.data(), duplicate=st.booleans())
    def deliver(self, data, duplicate) -> None:
        index = data.draw(st.integers(0, len(self.broker.queue) - 1))
        message = self.broker.queue[index] if duplicate else self.broker.queue.pop(index)
        self.broker.execute(message)

    @precondition(lambda self: self.broker.queue)
    @rule(data=st.data())
    def lose_a_message(self, data) -> None:
        self.broker.queue.pop(data.draw(st.integers(0, len(self.broker.queue) - 1)))

    @precondition(lambda self: self.broker.queue)
    @rule(data=st.data(), redelivered=st.booleans())
    def crash_between_acting_and_recording(self, data, redelivered) -> None:
        index = data.draw(st.integers(0, len(self.broker.queue) - 1))
        message = self.broker.queue[index]
        name, args = message.signature.task, list(message.signature.args)
        if name == "provisioning.run_steps":
            op_id, kind, positions = args
            step_name = runner.saga_for(kind).groups()[positions[0]][0].name
            _, ctx = runner._claim(op_id, positions[0], step_name)
        elif name == "provisioning.run_step":
            _, ctx = runner._claim(*args)
        else:
            return
        if ctx is not None:
            try:
                ctx.step.run(ctx)  # it acts; then the worker dies before recording anything
            except Exception:
                pass
        if not redelivered:
            self.broker.queue.pop(index)

    @rule(data=st.data())
    def signal_approve(self, data) -> None:
        op = Operation.objects.get(pk=data.draw(st.sampled_from(self.ops)))
        try:
            operation_signal(operation=op, name="approve", payload={})
        except ServiceError:
            pass  # it had ended

    @rule(data=st.data())
    def cancel(self, data) -> None:
        op = Operation.objects.get(pk=data.draw(st.sampled_from(self.ops)))
        try:
            operation_cancel(operation=op)
        except ServiceError:
            pass

    @rule()
    def sweep(self) -> None:
        time.sleep(settings.SAGA_HEARTBEAT_TIMEOUT + 0.01)
        runner.sweep()

    @invariant()
    def subject_status_equals_operation_state(self) -> None:
        for op_id in self.ops:
            assert sagas.subject_state(op_id) == Operation.objects.get(pk=op_id).state

    def teardown(self) -> None:
        try:
            self.drain()
            self.check_final()
        finally:
            self.broker.uninstall()

    def drain(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            while self.broker.queue and time.monotonic() < deadline:
                self.broker.execute(self.broker.queue.pop(0))
            if all(Operation.objects.get(pk=op_id).is_terminal for op_id in self.ops):
                return
            time.sleep(settings.SAGA_HEARTBEAT_TIMEOUT + 0.01)
            runner.sweep()

    def check_final(self) -> None:
        for op_id in self.ops:
            op = Operation.objects.get(pk=op_id)
            assert op.is_terminal, f"{op_id} still {op.state}: {op.steps}"
            assert sagas.subject_state(op_id) == op.state
            starts = [s for s, kind, _ in sagas.effects(op_id, "start") if "#" in s]
            attempts: dict[str, list[int]] = {}
            for label in starts:
                name, _, attempt = label.partition("#")
                attempts.setdefault(name, []).append(int(attempt))
            for name, seen in attempts.items():
                assert len(seen) == len(set(seen)), f"{name}: an attempt ran twice: {seen}"
                if op.steps[name]["status"] in ("done", "compensated"):
                    done_attempt = op.step_runs.get(step=name, outcome="done").attempt
                    assert max(seen) == done_attempt, f"{name} ran again after it finished: {seen}"
            compensated = [s for s, _, _ in sagas.effects(op_id, "compensate")]
            finished = [n for n in ("m1", "m2", "m3", "m4") if op.steps[n]["status"] == "compensated"]
            assert sorted(compensated) == sorted(finished), (compensated, op.steps)
            assert len(compensated) == len(set(compensated))
            order = {"m1": 0, "m2": 1, "m3": 1, "m4": 2}
            assert [order[n] for n in compensated] == sorted((order[n] for n in compensated), reverse=True)
            if op.state == "succeeded":
                assert all(op.steps[n]["status"] == "done" for n in order)
            else:
                assert not any(op.steps[n]["status"] == "done" for n in order), op.steps


@pytest.fixture
def model_world(settings):
    sagas.ensure_table()
    sagas.ensure_subject_table()
    settings.SAGA_HEARTBEAT_TIMEOUT = 0.05
    settings.SAGA_REDRIVE_AFTER = 0.05
    settings.SAGA_COUNTDOWN_MAX = 10.0


def test_the_engine_keeps_its_invariants_under_random_deliveries_crashes_signals_and_cancels(model_world):
    run_state_machine_as_test(
        EngineMachine,
        settings=hsettings(
            max_examples=int(os.environ.get("ENGINE_PROPERTY_EXAMPLES", "40")),
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
