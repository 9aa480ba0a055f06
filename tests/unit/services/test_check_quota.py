from __future__ import annotations

from authz_service.decisions import AuthMethod, Identity, RequestAttributes
from authz_service.schema import CheckQuota
from authz_service.services.check_quota import CheckQuotaDescriptors

PER_HOST = CheckQuota.model_validate(
    {"domain": "d", "descriptors": [{"entries": [{"key": "host", "source": "host"}]}]}
)


def test_every_spelling_of_a_host_counts_against_one_quota() -> None:
    check_quota = CheckQuotaDescriptors(PER_HOST)
    spellings = ["api.example.com", "API.example.com.", "api.example.com.:443", "Api.Example.Com"]
    built = {
        str(check_quota.descriptors(RequestAttributes(method="GET", host=host, path="/"), None))
        for host in spellings
    }
    assert built == {str([[("host", "api.example.com")]])}


PER_BOUND_KEY = CheckQuota.model_validate(
    {"domain": "d", "descriptors": [{"entries": [{"key": "client", "source": "bound_key"}]}]}
)


def test_a_quota_keyed_on_the_bound_key_counts_per_client_key_not_per_subject() -> None:
    check_quota = CheckQuotaDescriptors(PER_BOUND_KEY)
    request = RequestAttributes(method="GET", host="api", path="/")

    def built(identity: Identity) -> list[list[tuple[str, str]]]:
        return [list(entries) for entries in check_quota.descriptors(request, identity)]

    alice = Identity("alice", AuthMethod.JWT, bound_jkt="key-1")
    bob_same_key = Identity("bob", AuthMethod.JWT, bound_jkt="key-1")
    assert built(alice) == built(bob_same_key) == [[("client", "jkt:key-1")]]
    by_cert = Identity("svc", AuthMethod.JWT, bound_x5t="cert-1")
    assert built(by_cert) == [[("client", "x5t:cert-1")]]
    assert built(Identity("carol", AuthMethod.JWT)) == []  # unbound: no descriptor
