from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.idp import running_idp
from tools.dev_idp import DevIdentityProvider


@pytest.fixture
def idp() -> Iterator[DevIdentityProvider]:
    """A fresh dev identity provider per test."""
    with running_idp() as provider:
        yield provider
