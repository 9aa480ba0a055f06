"""The demo application behind API Gateway: answers with what the authorizer decided
(principal, roles, tier), as the docker-compose upstream echoes its identity headers."""

from __future__ import annotations

import json
from typing import Any


def handler(event: dict[str, Any], _context: object = None) -> dict[str, Any]:
    authorizer = event.get("requestContext", {}).get("authorizer", {})
    # REST APIs put the context at the top; HTTP APIs under "lambda".
    context = authorizer.get("lambda", authorizer)
    body = {
        "path": event.get("rawPath") or event.get("path"),
        "principal": context.get("principal"),
        "roles": context.get("roles"),
        "tier": context.get("tier"),
    }
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body),
    }
