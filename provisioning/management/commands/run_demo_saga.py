from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from provisioning.saga import runner


class Command(BaseCommand):
    help = (
        "Start the five-step demo saga, wait for it and print how it ended (checks web, worker and broker)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--timeout", type=float, default=60.0)

    def handle(self, *args, timeout: float, **options) -> None:
        with transaction.atomic():
            op = runner.start(kind="demo")
        self.stdout.write(f"Operation {op.pk} started; waiting for a worker ...")
        op = runner.wait_for(op.pk, timeout=timeout)
        self.stdout.write(f"Operation {op.pk}: {op.state} ({op.message})")
        if op.state != "succeeded":
            raise CommandError(f"The demo saga did not succeed within {timeout:.0f} s: is a worker running?")
