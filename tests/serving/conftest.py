"""Fixtures shared by the proxy tests."""

import pytest

from tests.serving.upstreams import Upstream
from tests.servers import serve


@pytest.fixture
def upstream():
    """An upstream the test controls (records requests, holds streams until `let_go()`)."""
    up = Upstream()
    with serve(up.app) as server:
        up.url = server.url
        up.port = server.port
        yield up
