from django.core.management.base import BaseCommand, CommandError

from images.build_check import aws_build_check
from images.manifest import DISTRIBUTIONS
from provisioning.providers import ProviderError


class Command(BaseCommand):
    help = (
        "Run one small image build against a real AWS account (a builder instance, CreateImage, "
        "cleanup) and print every step; exits non-zero when it fails. Costs a few cents."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--region", required=True)
        parser.add_argument("--profile", help="a profile of this machine (default: its credential chain)")
        parser.add_argument("--distribution", default="debian-12", choices=DISTRIBUTIONS)
        parser.add_argument("--timeout", type=float, default=1800.0, help="seconds the build may take")
        parser.add_argument("--interval", type=float, default=15.0, help="seconds between two looks")
        parser.add_argument("--keep", action="store_true", help="keep the AMI (and its snapshot)")

    def handle(self, *args, region, profile, distribution, timeout, interval, keep, **options):
        try:
            image_id = aws_build_check(
                region=region,
                account={"profile": profile or ""},
                distribution=distribution,
                timeout=timeout,
                interval=interval,
                keep=keep,
                say=self.stdout.write,
            )
        except ProviderError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"OK: {image_id} was built{' and kept' if keep else ''}.")
