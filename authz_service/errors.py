"""Every exception of ours, in one tree: which are transient, and what each becomes.

    AuthzError                     anything of ours; never raised itself
    ├── ConfigError                a config file, flag or setting that cannot be used: start-up
    │   │                          prints one line and exits 2, a reload keeps the old config
    │   │                          (config/errors.py re-exports it)
    │   ├── DescriptorBudgetError  the connection caps do not fit the open-file limit
    │   │                          (preflight/open_files.py)
    │   ├── EnvoyConfigError       an Envoy file `check-descriptors` reads is unusable
    │   │                          (cli/envoy_descriptors.py)
    │   └── BadCondition           a rule's `when:` that does not compile or exceeds the cost
    │       │                      bound (authz/conditions.py)
    │       └── ConditionError     the same, with its place in the config (authz/rbac.py)
    ├── ListenError                a port that cannot be bound, at start (preflight/ports.py)
    ├── QuotaUnavailable           the admin quota call cannot be answered: no rate limiting,
    │   │                          no such limit, or the store is down (services/quota_admin.py)
    │   └── QuotaServiceUnavailable  RLQS with no rate limits configured: nothing to assign
    │                                (services/quota_types.py)
    ├── TransientError             the dependency may answer the next call: retry, or let the
    │   │                          configured failure mode decide; never a config problem
    │   ├── StoreUnavailable       the quota store did not answer: down, slow, breaker open,
    │   │                          memory store full (ratelimit/store.py)
    │   ├── JwksFetchError         an IdP's JWKS or discovery document could not be used; the
    │   │                          keys already held stay in use (authn/jwks.py)
    │   └── IntrospectionUnavailable  an opaque token's introspection endpoint did not answer
    │                              usably: 503, never an allow (authn/introspection_client.py)
    ├── RequestRefused             a check refused before it is decided: a deny, counted and
    │   │                          audited like any other answer, not a failure
    │   ├── UnreadableRequest      lacks what its transport must send, or does not parse
    │   │   │                      (the HTTP translators raise it: http/check_translate.py)
    │   │   ├── UnreadableEvent    not an API Gateway REQUEST authorizer event
    │   │   │                      (lambda_authorizer/events.py)
    │   │   ├── BadRequest         a ShouldRateLimit request without domain or descriptors
    │   │   │   │                  (grpc/ratelimit_messages.py)
    │   │   │   └── BadReport      an RLQS usage report without a domain
    │   │   │                      (grpc/quota_messages.py)
    │   │   ├── BadEvaluation      a body that is no AuthZEN Access Evaluation Request: 400
    │   │   │                      (services/authzen.py)
    │   │   └── AmbiguousRequest   two readers would read it differently: refused, not guessed
    │   │       ├── AmbiguousPath       (authz/paths.py)
    │   │       ├── AmbiguousHost       (authz/hosts.py)
    │   │       └── UnreadableOverride  a method override that is no method
    │   │                               (authz/method_overrides.py)
    │   ├── RequestTooLarge        too many or too large headers (services/request_limits.py)
    │   └── Overloaded             shed: too many checks in flight
    ├── CredentialError            a credential that cannot even be read
    │   ├── SegmentError           a JWT segment that is not strict JSON (authn/strict_json.py)
    │   └── DpopError              a DPoP proof that does not verify (authn/dpop.py)
    └── AuthorizerAnswer           how an AWS Lambda authorizer answers what is not a policy:
        ├── Unauthorized           by raising (lambda_authorizer/responses.py: 401)
        └── AuthorizerUnavailable  (lambda_authorizer/handler.py: 500)

`schema.FieldError` stays outside the tree: the schema is a leaf that imports nothing of
ours, and pydantic turns only a ValueError raised in a validator into a field error; the
loader reports it as a ConfigError.

Each class says what it becomes (class attributes, inherited down the tree):

| error | reason code | outcome | gRPC status | HTTP status | transient |
|---|---|---|---|---|---|
| anything unexpected, AuthzError | internal_error | unavailable | UNKNOWN | 500 | no |
| QuotaUnavailable | internal_error | unavailable | FAILED_PRECONDITION | 500 | no |
| QuotaServiceUnavailable | internal_error | unavailable | FAILED_PRECONDITION | 500 | no |
| StoreUnavailable | rate_limit_unavailable | unavailable | UNAVAILABLE | 503 | yes |
| JwksFetchError | unknown_key | unauthenticated | UNAVAILABLE | 503 | yes |
| IntrospectionUnavailable | introspection_unavailable | unavailable | UNAVAILABLE | 503 | yes |
| UnreadableRequest (and below) | bad_request | forbidden | PERMISSION_DENIED | 403 | no |
| UnreadableEvent | bad_request | unavailable | UNKNOWN | 500 | no |
| BadRequest, BadReport | bad_request | forbidden | INVALID_ARGUMENT | 400 | no |
| BadEvaluation | bad_request | forbidden | INVALID_ARGUMENT | 400 | no |
| RequestTooLarge | request_too_large | forbidden | PERMISSION_DENIED | 431 | no |
| Overloaded | overloaded | unavailable | UNAVAILABLE | 503 | yes |
| CredentialError, SegmentError | malformed_token | unauthenticated | UNAUTHENTICATED | 401 | no |
| DpopError | invalid_dpop_proof | unauthenticated | UNAUTHENTICATED | 401 | no |
| Unauthorized | authentication_required | unauthenticated | UNAUTHENTICATED | 401 | no |

The reason code and outcome are those of `decisions.Reason` and `decisions.Outcome` (a leaf
module cannot import them; tests/unit/test_errors.py checks they exist). A refused check
answers with the outcome's status (services/response_policy.py agrees with this table); a
ShouldRateLimit or admin call ends with the gRPC status; an error past the decision is counted
in `authz_rpc_errors_total{code}` under the status here.
"""

from __future__ import annotations

from typing import ClassVar


class AuthzError(Exception):
    """Anything of ours. Not raised itself: an unexpected error is mapped like this."""

    reason: ClassVar[str] = "internal_error"
    outcome: ClassVar[str] = "unavailable"
    grpc_status: ClassVar[str] = "UNKNOWN"
    http_status: ClassVar[int] = 500
    transient: ClassVar[bool] = False
    # Seconds a client should wait before retrying, sent as Retry-After; None: no header.
    retry_after_s: ClassVar[int | None] = None


class ConfigError(AuthzError):
    """A config that cannot be used; the message names the file, line and field."""


class ListenError(AuthzError):
    """A listen address that cannot be used: the message names the setting and the address."""


class QuotaUnavailable(AuthzError):
    """Rate limiting is not configured, the descriptor has no limit, or the store is down."""

    grpc_status = "FAILED_PRECONDITION"


class TransientError(AuthzError):
    """A dependency did not answer this time; it may the next."""

    transient = True
    grpc_status = "UNAVAILABLE"
    http_status = 503


class RequestRefused(AuthzError):
    """A check request answered without being decided: a deny, reported like any answer."""

    reason = "bad_request"
    outcome = "forbidden"
    grpc_status = "PERMISSION_DENIED"
    http_status = 403


class UnreadableRequest(RequestRefused, ValueError):
    """The request lacks what its transport must send, or cannot be parsed."""


class AmbiguousRequest(UnreadableRequest):
    """Two readers (we and the upstream) could read the request differently."""


class RequestTooLarge(RequestRefused, ValueError):
    """The head is past a limit: the request is denied without being read further."""

    reason = "request_too_large"
    http_status = 431


class Overloaded(RequestRefused):
    """Too many checks in flight: shed at once, before any work."""

    reason = "overloaded"
    outcome = "unavailable"
    grpc_status = "UNAVAILABLE"
    http_status = 503
    transient = True
    retry_after_s = 1


class CredentialError(AuthzError, ValueError):
    """A credential that cannot be read at all (not one that fails verification)."""

    reason = "malformed_token"
    outcome = "unauthenticated"
    grpc_status = "UNAUTHENTICATED"
    http_status = 401


class AuthorizerAnswer(AuthzError):
    """An AWS Lambda authorizer answers a 401 or a 500 by raising."""


def grpc_status_of(error: BaseException) -> str:
    """The gRPC status an error ends a call with: its own, or UNKNOWN for one not of ours."""
    return error.grpc_status if isinstance(error, AuthzError) else AuthzError.grpc_status
