"""A saga that provisions nothing: five quick steps, for the README's first run, the benchmark and
operators who want to see that web, worker and beat work together."""

from provisioning.saga.definition import Saga
from provisioning.saga.steps import Done, Step


class NoopStep(Step):
    def __init__(self, name: str, weight: int) -> None:
        self.name = name
        self.title = f"Demo step {weight}"
        self.weight = weight

    def run(self, ctx) -> Done:
        return Done({self.name: ctx.attempt})


class DemoSaga(Saga):
    kind = "demo"
    steps = [NoopStep(f"step{i}", i) for i in range(1, 6)]
