"""`manage.py aws_build_check` against the moto server: the operator's check builds, prints every
step and removes what it made (against a real account it is run by hand, see the README)."""

from io import StringIO

from django.core.management import call_command

from tests.images.test_build_applies_manifest import left_at_aws


def test_the_check_builds_prints_every_step_and_leaves_nothing(aws_endpoint):
    out = StringIO()
    call_command(
        "aws_build_check", "--region", "us-east-2", "--interval", "0.2", "--timeout", "60", stdout=out
    )
    text = out.getvalue()
    assert "builder i-" in text
    assert "the builder finished; stopping it" in text
    assert text.splitlines()[-1].startswith("OK: ami-")
    ref = text.split(":", 1)[0]
    left = left_at_aws("us-east-2", ref)
    assert left["images"] == [] and left["snapshots"] == []
    assert all(s in ("terminated", "shutting-down") for s in left["builders"]), left
