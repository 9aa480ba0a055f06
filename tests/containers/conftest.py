"""Container tests: podman builds the project's images (no registry) and runs them."""

from __future__ import annotations

import pytest

from tests.containers.podman import build_images
from tests.support import find_binary


@pytest.fixture(scope="session")
def service_image() -> str:
    """The Dockerfile built unchanged on the debootstrapped base (built once per machine)."""
    for tool in ("podman", "debootstrap"):
        find_binary(tool)
    build_images()
    return "localhost/authz-service:dev"
