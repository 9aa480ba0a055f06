from tests.e2e.conftest import envoy_available  # noqa: F401
from tests.support.redis import redis_server_factory  # noqa: F401
