"""The shipped gateway examples agree with the service: mount paths, every identity header
copied (so no client copy passes), the Lambda handler's name and response format."""

from __future__ import annotations

import importlib
import re
from typing import Any

import yaml

from authz_service.schema import HttpCheckSettings, IdentityHeaders
from tools.processes import REPO_ROOT

EXAMPLES = REPO_ROOT / "examples"
DEFAULT_MOUNTS = {e.integration: e.path for e in HttpCheckSettings().endpoints}


def identity_header_names() -> set[str]:
    """The default identity headers, and config/local.yaml's claim headers."""
    defaults = IdentityHeaders()
    names = {defaults.subject, defaults.roles, defaults.tier, defaults.auth_method}
    local = yaml.safe_load((REPO_ROOT / "config" / "local.yaml").read_text())
    for provider in local["jwt_providers"]:
        names.update(provider.get("claims_to_headers", {}).values())
    return {name for name in names if name}


def test_traefik_example_copies_every_identity_header_from_our_mount() -> None:
    config = yaml.safe_load((EXAMPLES / "traefik" / "dynamic.yaml").read_text())
    forward = config["http"]["middlewares"]["authz"]["forwardAuth"]
    assert forward["address"].endswith(DEFAULT_MOUNTS["traefik"])
    assert forward["trustForwardHeader"] is False
    copied = {name.lower() for name in forward["authResponseHeaders"]}
    assert identity_header_names() <= copied


def test_nginx_example_sets_every_identity_header_and_the_original_request() -> None:
    text = (EXAMPLES / "nginx" / "nginx.conf").read_text()
    for name in identity_header_names():
        assert re.search(rf"proxy_set_header {name}\s", text), name
    for header in ("X-Original-URI", "X-Original-Method", "X-Original-Host", "X-Real-IP"):
        assert f"proxy_set_header {header}" in text
    assert f"proxy_pass http://authz_service{DEFAULT_MOUNTS['nginx']};" in text


class _CloudFormationLoader(yaml.SafeLoader):
    """Reads !Ref, !GetAtt, !Sub as plain values (the structure is what is checked)."""


def _any_tag(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


_CloudFormationLoader.add_multi_constructor("!", _any_tag)


def test_sam_template_names_the_handler_and_matches_its_response_format() -> None:
    template = yaml.load(
        (EXAMPLES / "aws" / "template.yaml").read_text(), Loader=_CloudFormationLoader
    )
    resources = template["Resources"]
    function = resources["Authorizer"]["Properties"]
    module_name, _, attribute = function["Handler"].rpartition(".")
    assert callable(getattr(importlib.import_module(module_name), attribute))
    variables = function["Environment"]["Variables"]
    rest = resources["RestApi"]["Properties"]["Auth"]["Authorizers"]["AuthzService"]
    http = resources["HttpApi"]["Properties"]["Auth"]["Authorizers"]["AuthzService"]
    assert rest["FunctionPayloadType"] == "REQUEST"
    assert http["AuthorizerPayloadFormatVersion"] == "2.0"
    assert http["EnableSimpleResponses"] is (variables["AUTHZ_V2_RESPONSE"] == "simple")
    # Decisions depend on method and path: a cached answer must never serve another route.
    assert rest["Identity"]["ReauthorizeTtl"] == 0
    assert http["Identity"]["ReauthorizeTtl"] == 0
