"""Page links (ipt_api/fhir/paging.py): the query encoded as `urllib.parse.urlencode` does."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

from hypothesis import given
from hypothesis import strategies as st

from ipt_api.fhir.paging import PAGE_PARAM, page_url

_TEXT = st.text(max_size=40)  # any code point: spaces, reserved characters, beyond ASCII


@given(st.lists(st.tuples(_TEXT, _TEXT), max_size=6))
def test_the_query_is_urlencodes(params: list[tuple[str, str]]) -> None:
    kept = [(key, value) for key, value in params if key != PAGE_PARAM]
    expected = urlencode(kept)
    assert page_url("https://x.test/fhir/Encounter", params) == (
        "https://x.test/fhir/Encounter" + ("?" + expected if expected else "")
    )


def test_the_cursor_replaces_the_old_one_and_everything_round_trips() -> None:
    params = [("subject", "Patient/a b+c"), ("code", "http://loinc.org|44261-6"), ("_page", "old")]
    url = page_url("https://x.test/fhir/Observation", params, "tok-1")
    assert url == (
        "https://x.test/fhir/Observation?subject=Patient%2Fa+b%2Bc"
        "&code=http%3A%2F%2Floinc.org%7C44261-6&_page=tok-1"
    )
    assert parse_qsl(urlsplit(url).query) == [*params[:2], ("_page", "tok-1")]
