"""The `quota_service:` section: Envoy's Rate Limit Quota Service (RLQS) on the gRPC port.

Envoy's `rate_limit_quota` filter groups requests into buckets, enforces locally the token
bucket this service assigns each Envoy, and reports usage every 5 s. The buckets are
described here with the same descriptor entries as `check_quota` (and limited by the same
`rate_limit` domains), so a quota changes transport, not definition. `authz-service
rlqs-filter` renders the Envoy side from this section.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from authz_service.schema.base import Duration, FieldError, Strict
from authz_service.schema.policy import IdentityHeaders
from authz_service.schema.ratelimit import QuotaDescriptor

# Envoy's filter reads headers and the connection only: no Check context_extensions, and its
# `:path` carries the query string (one bucket per query would be no limit at all).
UNSUPPORTED_SOURCES = {"path": "the request path", "context": "a context_extensions entry"}
# What an identity source becomes on the Envoy side: the header ext_authz set on allow.
IDENTITY_HEADER_OF = {"principal": "subject", "tier": "tier", "auth_method": "auth_method"}


class QuotaServiceSettings(Strict):
    """Example (YAML):

    quota_service:
      domain: gateway
      descriptors:
        - entries: [{key: remote_address, source: client_ip}]
        - entries: [{key: tier, source: tier}, {key: user, source: principal}]
      assignment_ttl: 15s
      store_unavailable: local_shares
    """

    domain: str = Field(min_length=1)
    # One Envoy filter (one bucket per request) per descriptor, in this order.
    descriptors: list[QuotaDescriptor] = Field(min_length=1)
    # How long Envoy keeps enforcing an assignment without a fresh one, and how long an
    # Envoy that stopped reporting keeps its share. Whole seconds (Envoy drops fractions),
    # longer than Envoy's 5 s report interval: every report refreshes it.
    assignment_ttl: Duration = 15.0
    # Each active Envoy is guaranteed this fraction of an equal split of a limit; the rest
    # is shared in proportion to the Envoys' recent demand.
    min_share: float = Field(default=0.1, gt=0, le=1)
    # The usage store does not answer: split each limit among the Envoys this replica serves
    # (exact with one replica, up to replicas x the limit with several), or assign ALLOW_ALL
    # or DENY_ALL until it answers again.
    store_unavailable: Literal["local_shares", "allow_all", "deny_all"] = "local_shares"
    # What the rendered Envoy filter does before its first assignment for a bucket and after
    # an assignment expired unrefreshed (this service unreachable for assignment_ttl).
    # "deny" also refuses the first request of every new bucket (Envoy decides it before any
    # answer can arrive).
    when_unassigned: Literal["allow", "deny"] = "allow"

    @field_validator("assignment_ttl")
    @classmethod
    def _whole_seconds(cls, value: float) -> float:
        if value != int(value) or not 6 <= value <= 86_400:
            raise ValueError(
                "must be whole seconds between 6 and 86400: Envoy drops fractions, and "
                "reports (which refresh it) come every 5 s"
            )
        return value

    @model_validator(mode="after")
    def _sources_envoy_can_read(self) -> QuotaServiceSettings:
        for index, descriptor in enumerate(self.descriptors):
            keys = [entry.key for entry in descriptor.entries]
            if len(set(keys)) != len(keys):
                raise FieldError("a bucket id has each key once", ("descriptors", index, "entries"))
            for position, entry in enumerate(descriptor.entries):
                source = "context" if entry.context is not None else entry.source
                if source in UNSUPPORTED_SOURCES:
                    raise FieldError(
                        f"Envoy's rate_limit_quota filter cannot read {UNSUPPORTED_SOURCES[source]}"
                        " (use a header)",
                        ("descriptors", index, "entries", position),
                    )
        return self


def check_identity_headers(settings: QuotaServiceSettings, headers: IdentityHeaders) -> None:
    """Identity sources reach Envoy's filter as the headers ext_authz sets on allow: each one
    used needs its identity header configured. Raises FieldError (relative to the root)."""
    for index, descriptor in enumerate(settings.descriptors):
        for position, entry in enumerate(descriptor.entries):
            field = IDENTITY_HEADER_OF.get(entry.source or "")
            if field is not None and getattr(headers, field) is None:
                raise FieldError(
                    f"source {entry.source!r} reaches Envoy's filter as identity_headers."
                    f"{field}, which is not set",
                    ("quota_service", "descriptors", index, "entries", position),
                )
