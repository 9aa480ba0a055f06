"""What explain shows: the decision Check would make, and what each stage found on the way.

The stages fill an `Explanation` when the pipeline runs in explain mode (services/pipeline.py);
the admin API and `authz-service explain` print it through services/explain_view.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from authz_service.authz.rbac import Trace
from authz_service.decisions import Decision, Outcome, Reason
from authz_service.ratelimit.results import LockoutState, RateLimitResult
from authz_service.services.check_quota import Entry

# What a pipeline answers when no stage decided: fail closed (a pipeline without the
# authorize stage is a bug, never an allow).
UNDECIDED = Decision(Outcome.UNAVAILABLE, Reason.INTERNAL_ERROR, "no stage decided")


@dataclass(frozen=True, slots=True)
class BindingCheck:
    """One sender-constraint check (DPoP, certificate binding): which binding, whether the
    request satisfied it and, if not, the refusal's reason code and the check that failed.
    Never a proof, thumbprint or token."""

    binding: str  # "dpop" | "certificate (x5t#S256)"
    verified: bool
    why: str
    reason: str = ""  # the reason code of the refusal when not verified

    def __str__(self) -> str:
        if self.verified:
            return f"{self.binding}: {self.why}"
        return f"{self.binding}: refused ({self.reason}): {self.why}"


@dataclass(frozen=True, slots=True)
class QuotaPreview:
    """What the one-call quota would answer the next request, with nothing charged."""

    domain: str
    descriptors: tuple[tuple[Entry, ...], ...]
    result: RateLimitResult | None  # None: the store could not answer


@dataclass(slots=True)
class Explanation:
    """Filled in by the stages, in order; `decision` is set last."""

    decision: Decision = UNDECIDED
    trace: Trace = field(default_factory=Trace)  # the RBAC rules, as evaluated
    credential: str = "none"  # which credential was found, never its value
    lockout: LockoutState | None = None  # None: brute-force lockout off or no source address
    # Sender-constraint checks (DPoP, certificate binding): which binding, and why it failed;
    # never a proof, thumbprint or token.
    bindings: list[BindingCheck] = field(default_factory=list)
    quota: QuotaPreview | None = None  # None: no quota in Check, or the request is refused
