"""Cutting token cookies out of a Cookie header: whatever spelling the authenticator (or an
upstream framework) would read a token cookie from, it is gone from what is passed on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authz_service.authn.authenticator import read_cookie
from authz_service.authn.cookie_strip import CookieStripper

STRIPPER = CookieStripper({"access_token"})


@pytest.mark.parametrize(
    ("header", "kept"),
    [
        ("access_token=T", ""),
        ("a=1; access_token=T; b=2", "a=1; b=2"),
        ("a=1;access_token=T;b=2", "a=1; b=2"),
        ("access_token = T; b=2", "b=2"),
        ("access_token=T; access_token=U; b=2", "b=2"),
        # Separated by whitespace only: SimpleCookie reads both pairs.
        ("a=1 access_token=T", ""),
        # Two Cookie headers joined with "," by a proxy.
        ("a=1,access_token=T; b=2", "b=2"),
        # A quoted value hiding a `;`: the token half is cut, never passed on.
        ('a="x; access_token=T"; b=2', 'a="x; b=2'),
        # Other cookies whose names merely contain the token cookie's name stay.
        ("my_access_token=1; access_token_x=2", "my_access_token=1; access_token_x=2"),
        ("theme=dark", "theme=dark"),
        ("", ""),
    ],
)
def test_token_cookies_are_cut_and_the_others_kept(header: str, kept: str) -> None:
    assert STRIPPER.cut(header) == kept


def test_no_names_means_no_change() -> None:
    assert CookieStripper(()).cut("access_token=T") == "access_token=T"


cookie_text = st.text(alphabet="abc_=;, \t\"'\\access_token", max_size=60)


@given(cookie_text)
def test_the_authenticator_never_reads_a_token_cookie_from_what_is_kept(header: str) -> None:
    assert read_cookie(STRIPPER.cut(header), "access_token") is None
