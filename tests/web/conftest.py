"""Actors of the page tests: the application tests' people (Mia, Ada and Carl of Acme, Oscar of Globex,
Hank the hostmaster) and their team, and the images tests' guard that no local instance outlives a test."""

from tests.applications.conftest import (  # noqa: F401
    acme,
    authorizer,
    colleague,
    hostmaster,
    outsider,
    requester,
    team,
)
from tests.images.conftest import no_local_instance_left  # noqa: F401
