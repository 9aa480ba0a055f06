from tests.support.redis import (  # noqa: F401 (fixtures)
    redis_cluster,
    redis_server,
    redis_server_factory,
)
