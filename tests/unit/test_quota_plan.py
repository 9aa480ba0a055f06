from __future__ import annotations

from authz_service.config.model import CheckQuota
from authz_service.model import RequestAttributes
from authz_service.quota import QuotaPlan

PER_HOST = CheckQuota.model_validate(
    {"domain": "d", "descriptors": [{"entries": [{"key": "host", "source": "host"}]}]}
)


def test_every_spelling_of_a_host_counts_against_one_quota() -> None:
    plan = QuotaPlan(PER_HOST)
    spellings = ["api.example.com", "API.example.com.", "api.example.com.:443", "Api.Example.Com"]
    built = {
        str(plan.descriptors(RequestAttributes(method="GET", host=host, path="/"), None))
        for host in spellings
    }
    assert built == {str([[("host", "api.example.com")]])}
