"""The envoyproxy/ratelimit YAML schema, as pydantic models, plus our optional extensions.

A file written for envoyproxy/ratelimit validates here unchanged. Extensions are new optional
keys only: `algorithm`, `window`, `charge_rejected` on a `rate_limit`, and `rate_limits` (a list)
beside `rate_limit` on a descriptor.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from authz_service.schema.base import Duration, Strict

Unit = Literal["second", "minute", "hour", "day", "week", "month", "year"]
Algorithm = Literal["fixed_window", "sliding_window", "token_bucket", "gcra"]

# Same lengths as envoyproxy/ratelimit (utils.UnitToDivider): a month is 30 days, a year 365.
UNIT_SECONDS: dict[str, int] = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
    "month": 30 * 86400,
    "year": 365 * 86400,
}


def _unit(value: Any) -> Any:
    # envoyproxy/ratelimit upper-cases the unit before looking it up: accept any case.
    return value.lower() if isinstance(value, str) else value


def _scalar_text(value: Any) -> Any:
    # Go's yaml decodes `value: 200` into a string field; do the same.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


UnitName = Annotated[Unit, BeforeValidator(_unit)]
Text = Annotated[str, BeforeValidator(_scalar_text)]


class ReplacesSpec(Strict):
    name: str = Field(min_length=1)


class RateLimitSpec(Strict):
    unit: UnitName | None = None
    requests_per_unit: int = Field(default=0, ge=0, le=2**32 - 1)
    unlimited: bool = False
    name: str = ""
    replaces: tuple[ReplacesSpec, ...] = ()
    # Extensions.
    algorithm: Algorithm = "fixed_window"
    window: Duration | None = None
    charge_rejected: bool | None = None

    @model_validator(mode="after")
    def _consistent(self) -> RateLimitSpec:
        if self.unlimited:
            if self.unit is not None or self.window is not None:
                raise ValueError("should not specify rate limit unit when unlimited")
        elif self.unit is None and self.window is None:
            raise ValueError("a rate limit needs a 'unit' (second..year) or a 'window' ('30s')")
        if any(item.name == self.name for item in self.replaces if self.name):
            raise ValueError("replaces should not contain name of same descriptor")
        if self.charge_rejected and self.algorithm in ("token_bucket", "gcra"):
            raise ValueError(
                "charge_rejected does not apply to a token bucket: a rejected request has no "
                "token to spend"
            )
        return self

    @property
    def window_seconds(self) -> float:
        if self.window is not None:
            return self.window
        return float(UNIT_SECONDS[self.unit or "second"])

    @property
    def reported_unit(self) -> Unit:
        """The unit reported to Envoy: the one written, else the largest that fits the window."""
        if self.unit is not None:
            return self.unit
        fitting = [u for u, s in UNIT_SECONDS.items() if s <= self.window_seconds]
        chosen: Unit = fitting[-1] if fitting else "second"  # type: ignore[assignment]
        return chosen

    @property
    def charges_rejected(self) -> bool:
        # Default true like envoyproxy/ratelimit (INCRBY always); a bucket never goes negative.
        if self.charge_rejected is not None:
            return self.charge_rejected
        return self.algorithm not in ("token_bucket", "gcra")


class DescriptorSpec(Strict):
    key: str = Field(min_length=1)
    value: Text = ""
    rate_limit: RateLimitSpec | None = None
    rate_limits: tuple[RateLimitSpec, ...] = ()  # extension: several limits on one descriptor
    descriptors: tuple[DescriptorSpec, ...] = ()
    shadow_mode: bool = False
    # Accepted for compatibility; they only shape envoyproxy/ratelimit's statsd metric names.
    detailed_metric: bool = False
    value_to_metric: bool = False
    share_threshold: bool = False
    metadata: dict[str, Any] | None = None
    quota_mode: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> DescriptorSpec:
        if self.rate_limit is not None and self.rate_limits:
            raise ValueError("use either 'rate_limit' or 'rate_limits', not both")
        if self.share_threshold and "*" not in self.value:
            raise ValueError(
                "share_threshold can only be used with wildcard values (containing '*')"
            )
        if self.quota_mode:
            raise ValueError("quota_mode is not supported")
        return self

    @property
    def limits(self) -> tuple[RateLimitSpec, ...]:
        return (self.rate_limit,) if self.rate_limit is not None else self.rate_limits


class DomainSpec(Strict):
    domain: str = Field(min_length=1)
    descriptors: tuple[DescriptorSpec, ...] = ()
