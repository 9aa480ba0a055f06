"""AWS API Gateway REQUEST authorizer (REST payload 1.0, HTTP API payload 2.0): the same
config and decisions as the server. Handler: `authz_service.lambda_authorizer.handler.handler`."""
