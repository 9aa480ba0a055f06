"""The HTTP check endpoint for gateways without gRPC ext_authz: Envoy http_service, NGINX
auth_request, Traefik forwardAuth (see README, "Other gateways")."""

from authz_service.http.settings import HttpCheckSettings

__all__ = ["HttpCheckSettings"]
