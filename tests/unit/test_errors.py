"""The error tree of authz_service/errors.py: every exception of ours is in it, drawn in its
docstring, and maps to a real reason code, outcome and gRPC status, as its table says."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import grpc
import pytest

import authz_service
from authz_service import errors
from authz_service.decisions import Outcome, Reason
from authz_service.errors import AuthzError
from authz_service.grpc.quota_servicer import _StreamEnded
from authz_service.schema.base import FieldError

# The schema is a leaf and pydantic needs a ValueError: the one class outside the tree.
# FieldError: the schema is a leaf (see errors.py); _StreamEnded: the RLQS servicer's own
# control flow, caught in the same module and never an answer.
OUTSIDE_THE_TREE = {FieldError, _StreamEnded}


def our_exception_classes() -> set[type[BaseException]]:
    found: set[type[BaseException]] = set()
    for module in pkgutil.walk_packages(authz_service.__path__, "authz_service."):
        if module.name == "authz_service.__main__":
            continue  # running it is the CLI
        loaded = importlib.import_module(module.name)
        for _, value in inspect.getmembers(loaded, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__.startswith("authz_service"):
                found.add(value)
    return found


ALL = sorted(our_exception_classes(), key=lambda c: c.__name__)
TREE = sorted((c for c in ALL if issubclass(c, AuthzError)), key=lambda c: c.__name__)


def test_every_exception_of_ours_is_in_the_tree() -> None:
    outside = {cls for cls in ALL if not issubclass(cls, AuthzError)} - OUTSIDE_THE_TREE
    assert outside == set(), sorted(cls.__name__ for cls in outside)


@pytest.mark.parametrize("cls", TREE, ids=lambda c: c.__name__)
def test_every_error_is_drawn_in_the_docstring_tree(cls: type[AuthzError]) -> None:
    drawn = rf"^ *(?:[│ ]*[├└]── )?{cls.__name__}\b"
    assert re.search(drawn, errors.__doc__ or "", re.MULTILINE), cls.__name__


@pytest.mark.parametrize("cls", TREE, ids=lambda c: c.__name__)
def test_every_error_maps_to_a_reason_an_outcome_and_statuses(cls: type[AuthzError]) -> None:
    assert Reason(cls.reason).value == cls.reason
    assert Outcome(cls.outcome).value == cls.outcome
    assert cls.grpc_status in grpc.StatusCode.__members__
    assert 400 <= cls.http_status <= 599


def table_rows() -> list[tuple[str, list[str]]]:
    rows = []
    for line in (errors.__doc__ or "").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 6 and cells[0] not in ("error", "---"):
            rows.append((cells[0], cells[1:]))
    return rows


@pytest.mark.parametrize(("names", "mapping"), table_rows(), ids=lambda v: str(v))
def test_the_docstring_table_says_what_the_classes_say(names: str, mapping: list[str]) -> None:
    by_name = {cls.__name__: cls for cls in TREE}
    for name in re.findall(r"[A-Z][A-Za-z]+", names):
        cls = by_name[name]
        transient = "yes" if cls.transient else "no"
        row = [cls.reason, cls.outcome, cls.grpc_status, str(cls.http_status), transient]
        assert row == mapping, name


def test_the_table_covers_the_tree_and_says_which_are_transient() -> None:
    assert len(table_rows()) >= 10
    transient = {cls.__name__ for cls in TREE if cls.transient}
    assert transient == {
        "TransientError",
        "StoreUnavailable",
        "JwksFetchError",
        "IntrospectionUnavailable",
        "Overloaded",
    }


def test_an_error_not_of_ours_ends_a_call_unknown() -> None:
    assert errors.grpc_status_of(RuntimeError("a bug")) == "UNKNOWN"
    assert errors.grpc_status_of(errors.QuotaUnavailable("off")) == "FAILED_PRECONDITION"


def test_errors_that_were_value_errors_still_are() -> None:
    """Callers that caught ValueError before the tree existed still catch them."""
    from authz_service.authn.strict_json import SegmentError
    from authz_service.authz.paths import AmbiguousPath
    from authz_service.grpc.ratelimit_messages import BadRequest
    from authz_service.lambda_authorizer.events import UnreadableEvent
    from authz_service.services.request_limits import RequestTooLarge

    for cls in (SegmentError, AmbiguousPath, BadRequest, UnreadableEvent, RequestTooLarge):
        assert issubclass(cls, ValueError), cls.__name__
