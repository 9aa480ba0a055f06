"""Where the pipelined Redis connection goes, read from the configured URL and settings."""

from __future__ import annotations

from authz_service.ratelimit.redis_pipeline import RedisAddress
from authz_service.ratelimit.redis_store import pipelined_client
from authz_service.schema import RedisSettings


def test_a_redis_url_gives_host_port_database_and_credentials() -> None:
    address = RedisAddress.from_url("redis://ops:p%40ss@redis.internal:6380/2", None, None)
    assert address == RedisAddress(
        host="redis.internal", port=6380, db=2, username="ops", password="p@ss", tls=False
    )


def test_credentials_from_settings_win_over_those_in_the_url() -> None:
    address = RedisAddress.from_url("redis://ops:old@127.0.0.1/0", "svc", "new")
    assert (address.username, address.password) == ("svc", "new")


def test_a_unix_url_gives_the_socket_path_and_database() -> None:
    address = RedisAddress.from_url("unix:///run/redis/redis.sock?db=3", None, "pw")
    assert (address.unix_path, address.db, address.password) == ("/run/redis/redis.sock", 3, "pw")


def test_rediss_encrypts_even_without_a_tls_section_and_redis_does_not() -> None:
    assert pipelined_client(RedisSettings(url="rediss://127.0.0.1:6380/0")).encrypted
    assert not pipelined_client(RedisSettings(url="redis://127.0.0.1:6379/0")).encrypted
