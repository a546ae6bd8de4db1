"""python manage.py process_order PATH --customer NAME [--dry-run]: validate an order.yml of a customer,
show what changes, process it with progress per task and per service, and exit 0 on success, non-zero
with the reason. The environment belongs to that customer; another customer's is refused."""

from __future__ import annotations

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from provisioning.models import Customer, Operation
from provisioning.orders import services
from provisioning.orders.models import Order, ServiceDeployment
from provisioning.orders.spec import MAX_BYTES, OrderInvalid
from provisioning.services import ServiceError


class Command(BaseCommand):
    help = "Validate and process an environment order (order.yml)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", help="the order file, or - for standard input")
        parser.add_argument(
            "--customer", required=True, help="the customer the environment belongs to (by name)"
        )
        parser.add_argument("--dry-run", action="store_true", help="validate and show the changes only")
        parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for the end")

    def handle(self, *args, path: str, customer: str, dry_run: bool, timeout: float, **options) -> None:
        owner = Customer.objects.filter(name=customer.strip()).first()
        if owner is None:
            raise CommandError(
                f"There is no customer {customer.strip()!r}: the environment must belong to one. Create it "
                f"with `manage.py create_api_user USERNAME --customer {customer.strip()!r}`, or check the name."
            )
        text = self._read(path)
        try:
            order = services.order_create(text=text, customer=owner, dry_run=True)
        except OrderInvalid as exc:
            lines = [f"  {field}: {msg}" for field, msgs in exc.errors.items() for msg in msgs]
            raise CommandError("The order is refused:\n" + "\n".join(lines)) from None
        self._show_changes(order.changes)
        if dry_run:
            self.stdout.write("Dry run: nothing was changed.")
            return
        try:
            order = services.order_create(text=text, customer=owner)
        except OrderInvalid as exc:
            lines = [f"  {field}: {msg}" for field, msgs in exc.errors.items() for msg in msgs]
            raise CommandError("The order is refused:\n" + "\n".join(lines)) from None
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        if order.operation_id is None:
            self.stdout.write(self.style.SUCCESS(f"Order {order.pk}: {order.message}"))
            return
        self.stdout.write(f"Order {order.pk}: processing (operation {order.operation_id}).")
        order = self._follow(order, timeout)
        if order.status != "succeeded":
            raise CommandError(f"Order {order.pk} {order.status}: {order.error or order.message}")
        self.stdout.write(self.style.SUCCESS(f"Order {order.pk} succeeded."))

    def _read(self, path: str) -> bytes:
        import sys

        if path == "-":
            return sys.stdin.buffer.read(MAX_BYTES + 1)
        file = Path(path)
        if not file.is_file():
            raise CommandError(f"{path}: no such file.")
        with file.open("rb") as handle:
            return handle.read(MAX_BYTES + 1)

    def _show_changes(self, changes: list[str]) -> None:
        if not changes:
            self.stdout.write("Nothing to change: the environment is what the order says.")
            return
        self.stdout.write("Changes:")
        for change in changes:
            self.stdout.write(f"  - {change}")

    def _follow(self, order: Order, timeout: float) -> Order:
        """Print each task's and each service's status as it changes, until the order ends."""
        deadline = time.monotonic() + timeout
        seen: dict[str, str] = {}
        while True:
            order = Order.objects.get(pk=order.pk)
            for task in order.tasks:
                key, value = f"task {task['name']}", task["status"]
                if seen.get(key) != value:
                    seen[key] = value
                    self.stdout.write(f"  [{value:>11}] task {task['title']}")
            deployments = ServiceDeployment.objects.filter(environment_id=order.environment_id)
            for d in deployments.order_by("section", "path"):
                key, value = f"service {d.service_id}", f"{d.status}: {d.status_message}"
                if seen.get(key) != value:
                    seen[key] = value
                    self.stdout.write(
                        f"  [{d.status:>11}] service {d.service_id} ({d.section} {d.path}): "
                        f"{d.status_message}"
                    )
            if order.is_terminal:
                return order
            if time.monotonic() > deadline:
                op = Operation.objects.filter(pk=order.operation_id).first()
                raise CommandError(
                    f"Order {order.pk} did not end within {timeout:.0f}s (still {order.status}"
                    f"{', ' + op.message if op else ''}). Is a worker running?"
                )
            time.sleep(0.3)
