"""Our HTTP servers: the check endpoint for gateways without gRPC ext_authz (Envoy
http_service, NGINX auth_request, Traefik forwardAuth; see README, "Other gateways") and the
observability port (/metrics, /healthz, /readyz), both behind a guarded listener."""
