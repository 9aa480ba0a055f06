"""authz_service: Envoy ext_authz and rate-limit decisions (JWT, API keys, mTLS, RBAC, quotas)."""

__version__ = "0.1.0"
__all__ = ["__version__"]
