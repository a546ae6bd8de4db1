"""One fresh copy of the repository for the embedded tests: run-embedded installs its .venv on the
first start, as on a new machine; each test runs the service on a DATA_DIR of its own."""

import pytest

from tests.embedded.service import fresh_copy


@pytest.fixture(scope="session")
def embedded_repo(tmp_path_factory):
    return fresh_copy(tmp_path_factory.mktemp("fresh-clone"))
