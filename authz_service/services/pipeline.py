"""The decision pipeline: an ordered list of stages, each one small object with one job.

A stage reads the request and what earlier stages found (an `Evaluation`), may add to it, and
either lets the request go on (None) or answers it (a Decision, which ends the pipeline). It
runs in one of two modes, with the same code deciding in both:

- enforce (Check): it may charge quota, count a failed attempt, use a one-time token;
- explain: it does none of that, and notes what it found in an `Explanation`.

The stage list is in services/stages/__init__.py; which stages a config needs is decided
when it is compiled (no lockout configured: no lockout stage), so a stage that is off costs
a request nothing. A stage without I/O is a `PureStage`: Check calls it without an await.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from authz_service.authn.revocation import RevocationList
from authz_service.decisions import AuthnFailure, Decision, Identity, RequestAttributes
from authz_service.services.compiled_config import CompiledConfig
from authz_service.services.explanation import UNDECIDED, Explanation


class Evaluation:
    """One request going through the pipeline: what the stages found, then the decision."""

    __slots__ = ("authn", "compiled", "decision", "request")

    def __init__(self, request: RequestAttributes, compiled: CompiledConfig) -> None:
        self.request = request
        self.compiled = compiled  # the config the request is decided under (and answered by)
        # Set by the authenticate stage: who the caller is, why not, or None (no credential).
        self.authn: Identity | AuthnFailure | None = None
        # The answer so far: set by the authorize stage, replaced by a later refusal.
        self.decision: Decision = UNDECIDED


@dataclass(frozen=True, slots=True)
class StageInputs:
    """What stages are built from: the compiled config, and the process's long-lived state."""

    compiled: CompiledConfig
    revocations: RevocationList


class Stage(ABC):
    name: ClassVar[str]
    # In explain mode, does this stage still run once an earlier stage refused? Yes for the
    # stages that only read (who the caller is, what RBAC says), so that explain shows how
    # the request would fare once the refusal is gone; no for those acting on an allow.
    explains_after_refusal: ClassVar[bool] = False

    @classmethod
    @abstractmethod
    def build(cls, inputs: StageInputs) -> Stage | None:
        """The stage for this config, or None when the config does not need it."""

    def applies_to(self, evaluation: Evaluation) -> bool:
        """Whether this request gives the stage anything to do, asked without an await (an
        I/O stage that has nothing to do then costs no coroutine). Override it to say when;
        `enforce` and `explain` run only when it holds."""
        return True

    @abstractmethod
    async def enforce(self, evaluation: Evaluation) -> Decision | None:
        """Check: None to go on, or the answer."""

    @abstractmethod
    async def explain(self, evaluation: Evaluation, explanation: Explanation) -> Decision | None:
        """The answer `enforce` would give, with no side effect; what was found is noted."""


class PureStage(Stage):
    """A stage that does no I/O: one method serves both modes, called without an await."""

    @abstractmethod
    def decide(self, evaluation: Evaluation, explanation: Explanation | None) -> Decision | None:
        """`explanation` is None in enforce mode."""

    async def enforce(self, evaluation: Evaluation) -> Decision | None:
        return self.decide(evaluation, None)

    async def explain(self, evaluation: Evaluation, explanation: Explanation) -> Decision | None:
        return self.decide(evaluation, explanation)


Condition = Callable[[Evaluation], bool]


class Pipeline:
    """The stages of one compiled config, in order. services/check.py runs them."""

    __slots__ = ("stages", "steps")

    def __init__(self, stages: Sequence[Stage]) -> None:
        self.stages = tuple(stages)
        # What Check's loop needs of each stage, looked up once: the stage again when it is
        # pure (called directly), and its condition when it has one.
        self.steps: tuple[tuple[PureStage | None, Condition | None, Stage], ...] = tuple(
            (
                stage if isinstance(stage, PureStage) else None,
                stage.applies_to if type(stage).applies_to is not Stage.applies_to else None,
                stage,
            )
            for stage in self.stages
        )
