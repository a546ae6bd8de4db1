from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from provisioning.saga import runner


class Command(BaseCommand):
    help = (
        "Start the five-step demo saga (--count times), wait for it and print how each ended "
        "(checks web, worker and broker)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each saga")
        parser.add_argument("--count", type=int, default=1, help="sagas to start at once (default 1)")

    def handle(self, *args, timeout: float, count: int, **options) -> None:
        if not 1 <= count <= 1000:
            raise CommandError("--count must be between 1 and 1000.")
        with transaction.atomic():
            started = [runner.start(kind="demo") for _ in range(count)]
        for op in started:
            self.stdout.write(f"Operation {op.pk} started; waiting for a worker ...")
        failed = 0
        for op in started:
            op = runner.wait_for(op.pk, timeout=timeout)
            self.stdout.write(f"Operation {op.pk}: {op.state} ({op.message})")
            failed += op.state != "succeeded"
        if failed:
            raise CommandError(
                f"{failed} of {count} demo sagas did not succeed within {timeout:.0f} s: is a worker running?"
            )
