"""The open-file limit, checked against the connection caps before any port opens.

Every accepted connection is a descriptor. If the ports' caps add up to more than the process
may open, the caps protect nothing: a flood on one port takes the descriptors the others (and
Redis, JWKS fetches, the audit file) need. At start the soft limit is raised to the hard one,
and a configuration whose caps still do not fit is refused with the numbers to change.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass

from authz_service.errors import ConfigError
from authz_service.schema import Config

log = logging.getLogger(__name__)

# Beyond the listeners' connections: the listening sockets, grpc's own pipes and epoll, JWKS
# and OIDC fetches, the audit file, logs, the config watcher. Redis pools are added apart.
RESERVED = 128


class DescriptorBudgetError(ConfigError):
    """The connection caps cannot fit in the open-file limit."""


@dataclass(frozen=True, slots=True)
class OpenPorts:
    """Which ports this process opens (a listen of None, in config or flags, is closed)."""

    admin: bool
    metrics: bool
    http_check: bool


def descriptors_needed(config: Config, ports: OpenPorts) -> dict[str, int]:
    """What each user of descriptors may hold at most, by the setting that bounds it."""
    needed = {"server.connections.max_connections": config.server.connections.max_connections}
    if ports.admin:
        needed["admin.connections.max_connections"] = config.admin.connections.max_connections
    if ports.metrics:
        needed["telemetry.metrics.connections.max_connections"] = (
            config.telemetry.metrics.connections.max_connections
        )
    if ports.http_check and config.http_check is not None:
        needed["http_check.connections.max_connections"] = (
            config.http_check.connections.max_connections
        )
    if config.rate_limit is not None and config.rate_limit.store == "redis":
        needed["rate_limit.redis.pool_size"] = config.rate_limit.redis.pool_size
    if config.revocation.store == "redis":
        needed["revocation.redis.pool_size"] = config.revocation.redis.pool_size
    needed["reserved"] = RESERVED
    return needed


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard one (as far as the kernel allows)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as error:  # e.g. above fs.nr_open
            log.warning("could not raise the open-file limit to %d: %s", target, error)
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def ensure_descriptors(config: Config, ports: OpenPorts) -> int:
    """The soft open-file limit, once raised; DescriptorBudgetError if the caps cannot fit."""
    needed = descriptors_needed(config, ports)
    total = sum(needed.values())
    soft, hard = raise_open_file_limit()
    if soft != resource.RLIM_INFINITY and total > soft:
        parts = " + ".join(f"{value} ({name})" for name, value in needed.items())
        raise DescriptorBudgetError(
            f"the connection caps need up to {total} open files: {parts}; "
            f"the open-file limit is {soft} (hard limit {hard}). Raise it (ulimit -n, "
            "systemd LimitNOFILE=, the container's nofile ulimit) or lower the caps"
        )
    log.info("open-file limit %d; connection caps and reserve need up to %d", soft, total)
    return soft
