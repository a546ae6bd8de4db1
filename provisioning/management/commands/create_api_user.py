from django.core.management.base import BaseCommand, CommandError

from provisioning.services import api_user_create_or_update


class Command(BaseCommand):
    help = "Create or update an API user of a customer and print its token alone on the last line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--customer", required=True, help="the customer (created if new)")
        parser.add_argument(
            "--hostmaster", action="store_true", help="also a hostmaster (staff, admin access)"
        )
        parser.add_argument("--member", action="store_true", help="a plain member instead of the owner role")
        parser.add_argument("--password", help="set this password (for the web pages and the admin)")

    def handle(
        self, *args, username: str, customer: str, hostmaster: bool, member: bool, password, **options
    ):
        if not username.strip() or not customer.strip():
            raise CommandError("USERNAME and --customer must not be empty.")
        user, token = api_user_create_or_update(
            username=username.strip(),
            customer_name=customer.strip(),
            hostmaster=hostmaster,
            password=password,
            role="member" if member else "owner",
        )
        role = "hostmaster" if hostmaster else ("member" if member else "owner")
        self.stdout.write(f"User {user.username} ({role}) of customer {customer.strip()}. API token:")
        self.stdout.write(token)
