"""Fixtures every test directory may use by name."""

from tests.support.authorization_server import authorization_server  # noqa: F401 (a fixture)
from tests.support.windows import fresh_minute  # noqa: F401 (a fixture)
