"""orjson and the standard library write the same warehouse lines."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firehose_transforms import jsonio

_text = st.text(max_size=30)
_rows = st.dictionaries(
    _text,
    st.none()
    | _text
    | st.integers(min_value=-(2**31), max_value=2**31)
    | st.dictionaries(_text, _text, max_size=3),
    max_size=8,
)


@pytest.mark.skipif(jsonio._ORJSON is None, reason="orjson is not installed")
@given(row=_rows)
def test_both_backends_write_identical_lines(row: dict[str, object]) -> None:
    assert jsonio._orjson_line(row) == jsonio._std_line(row)
    assert json.loads(jsonio._std_line(row)) == row


def test_switching_backends() -> None:
    jsonio.use_stdlib(True)
    try:
        assert jsonio.backend() == "json"
        assert jsonio.loads(b'{"a": "\\u00e9"}') == {"a": "é"}
        assert jsonio.dumps_line({"a": "é"}) == '{"a":"é"}\n'.encode()
    finally:
        jsonio.use_stdlib(False)
    assert jsonio.backend() == ("orjson" if jsonio._ORJSON is not None else "json")
