from __future__ import annotations

from authz_service.decisions import RequestAttributes
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
