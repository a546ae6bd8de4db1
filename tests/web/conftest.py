"""Actors of the page tests: the application tests' people (Mia, Ada and Carl of Acme, Oscar of Globex,
Hank the hostmaster) and their team, and the guards that no bucket and no local instance outlive a test."""

from tests.applications.conftest import (  # noqa: F401
    acme,
    authorizer,
    colleague,
    hostmaster,
    no_bucket_left_behind,
    outsider,
    requester,
    team,
)
from tests.images.conftest import no_local_instance_left  # noqa: F401
