"""A parameter's comma-separated values: the shortcut for values without escapes splits them
exactly as the escape-aware loop does (ipt_core/fhir/search/_values.py, `_split_or`)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ipt_core.fhir.search._values import _split_escaped, _split_or


@given(st.text(alphabet=st.sampled_from(["a", "é", ",", "|", "$", " ", "\\"]), max_size=30))
def test_values_are_split_as_the_escape_aware_loop_splits_them(raw: str) -> None:
    assert _split_or(raw) == _split_escaped(raw)


def test_escaped_commas_stay_in_their_value() -> None:
    assert _split_or(r"a\,b,c") == ["a,b", "c"]
    assert _split_or("Patient/p1,Patient/p2,") == ["Patient/p1", "Patient/p2", ""]
