"""The bounded parsers of jupiter.limits: each limit is named with its place, nothing over a
limit is built, and within the limits the answer is the standard library's."""

from __future__ import annotations

import contextlib
import json
import resource
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupiter.limits import (
    InputLimitError,
    InvalidJsonError,
    InvalidXmlError,
    JsonLimits,
    UnsafeXmlError,
    XmlLimits,
    check_xml,
    json_path,
    parse_json,
)

SMALL = JsonLimits(
    max_bytes=10_000, max_depth=5, max_string_chars=50, max_number_chars=20, max_values=100
)


def _limit(data: str | bytes, limits: JsonLimits = SMALL) -> InputLimitError:
    with pytest.raises(InputLimitError) as caught:
        parse_json(data, limits, what="the body")
    return caught.value


# ----- JSON: each limit, with where it was hit ------------------------------------------------


def test_bytes_limit_is_checked_before_decoding() -> None:
    error = _limit(b"[" + b"1," * 6000 + b"1]")
    assert error.limit == "max_bytes"
    assert error.maximum == 10_000
    assert error.actual == 12_003
    assert error.status_code == 413
    assert "the body: size in bytes (12,003) is over the limit of 10,000" in str(error)


def test_str_input_is_measured_in_utf8_bytes() -> None:
    text = json.dumps("é" * 4000, ensure_ascii=False)  # 4,002 characters, 8,002 bytes
    limits = JsonLimits(max_bytes=5000, max_string_chars=10_000)
    assert _limit(text, limits).limit == "max_bytes"
    assert parse_json(text, JsonLimits(max_bytes=9000, max_string_chars=10_000)) == "é" * 4000


def test_depth_names_the_path_of_the_first_container_too_deep() -> None:
    error = _limit('{"a": [{"b": [[{"c": 1}]]}]}')
    assert error.limit == "max_depth"
    assert error.json_path == "$.a[0].b[0][0]"
    assert error.to_dict() == {
        "limit": "max_depth",
        "maximum": 5,
        "location": {"json_path": "$.a[0].b[0][0]"},
    }


def test_nesting_beyond_the_recursion_limit_is_the_depth_limit_with_its_path() -> None:
    depth = sys.getrecursionlimit() * 3
    limits = JsonLimits(max_bytes=10 * depth, max_depth=64)
    error = _limit('{"runs": [' + "[" * depth + "]" * depth + "]}", limits)
    assert error.limit == "max_depth"
    assert error.json_path == "$.runs" + "[0]" * 63


def test_hundred_thousand_open_brackets_are_refused_without_growing_memory() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    error = _limit("[" * 100_000, JsonLimits(max_bytes=200_000, max_values=200_000))
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert error.limit == "max_depth"
    assert grown_kib < 50_000


def test_long_number_is_refused_before_int_sees_it() -> None:
    error = _limit('{"runs": [{"rank": ' + "1" * 4301 + "}]}", JsonLimits(max_bytes=10_000))
    assert error.limit == "max_number_chars"
    assert error.json_path == "$.runs[0].rank"
    assert (error.line, error.column) == (1, 20)


def test_digits_inside_strings_are_not_numbers() -> None:
    digits = "7" * 40
    assert parse_json(json.dumps({"hash": digits}), SMALL) == {"hash": digits}


def test_number_location_skips_strings_before_it() -> None:
    text = '{"a": "' + "1" * 30 + '", "b": [1, 2, ' + "9" * 30 + "]}"
    error = _limit(text)
    assert error.limit == "max_number_chars"
    assert error.json_path == "$.b[2]"


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ('{"k": "' + "x" * 51 + '"}', "$.k"),
        ('{"list": ["ok", "' + "x" * 51 + '"]}', "$.list[1]"),
        ('{"' + "k" * 51 + '": 1}', "$." + "k" * 40),
        ('"' + "x" * 51 + '"', "$"),
    ],
)
def test_string_length_names_the_string(document: str, path: str) -> None:
    error = _limit(document)
    assert error.limit == "max_string_chars"
    assert error.actual == 51
    assert error.json_path == path


def test_value_count_is_refused_before_anything_is_built() -> None:
    error = _limit("[" + "[]," * 150 + "[]]")
    assert error.limit == "max_values"
    assert error.json_path == "$"


def test_brackets_and_commas_inside_strings_do_not_count() -> None:
    text = json.dumps(["[,{" * 10] * 20)
    assert len(parse_json(text, SMALL)) == 20


def test_a_string_of_sixteen_megabytes_is_refused_by_a_string_limit() -> None:
    text = '{"a": "' + "x" * (16 * 1024 * 1024) + '"}'
    limits = JsonLimits(max_bytes=32 * 1024 * 1024, max_string_chars=1024 * 1024)
    error = _limit(text, limits)
    assert (error.limit, error.json_path) == ("max_string_chars", "$.a")


# ----- JSON: what is not JSON at all ----------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "line", "column"),
    [('{"a": }', 1, 7), ('{"a": 1,\n "b": tru}', 2, 7), ("", 1, 1), ('{"a": "x', 1, 7)],
)
def test_malformed_json_says_where(document: str, line: int, column: int) -> None:
    with pytest.raises(InvalidJsonError) as caught:
        parse_json(document, SMALL, what="the frame")
    assert (caught.value.line, caught.value.column) == (line, column)
    assert str(caught.value).startswith("the frame is not valid JSON")


@pytest.mark.parametrize(
    ("document", "column"),
    [("NaN", 1), ("[Infinity]", 2), ('{"NaN": "x", "a": -Infinity}', 19), ("[1,\n 1e999]", 2)],
)
def test_non_finite_numbers_are_not_json_and_say_where(document: str, column: int) -> None:
    with pytest.raises(InvalidJsonError) as caught:
        parse_json(document, SMALL)
    assert caught.value.column == column
    assert caught.value.line == document.count("\n") + 1


def test_invalid_utf8_says_which_byte() -> None:
    with pytest.raises(InvalidJsonError, match="at byte 7"):
        parse_json(b'{"a": "\xff"}', SMALL)


def test_nul_bytes_inside_strings_must_be_escaped() -> None:
    with pytest.raises(InvalidJsonError):
        parse_json(b'{"a": "x\x00y"}', SMALL)
    assert parse_json(b'{"a": "x\\u0000y"}', SMALL) == {"a": "x\x00y"}


def test_a_byte_order_mark_is_skipped() -> None:
    assert parse_json(b"\xef\xbb\xbf[1]", SMALL) == [1]


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_depth"):
        JsonLimits(max_depth=0)
    with pytest.raises(ValueError, match="max_elements"):
        XmlLimits(max_elements=0)


def test_json_path_quotes_keys_that_are_not_identifiers() -> None:
    assert json_path(["runs", 0, "a b", "ok"]) == '$.runs[0]["a b"].ok'


# ----- JSON: within the limits it is json.loads -----------------------------------------------

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**15), max_value=10**15)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_within_the_limits_the_answer_is_the_standard_librarys(value: object) -> None:
    text = json.dumps(value)
    limits = JsonLimits(max_depth=100, max_values=10_000)
    assert parse_json(text, limits) == json.loads(text)
    assert parse_json(text.encode(), limits) == json.loads(text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_get_one_of_the_documented_errors(data: bytes) -> None:
    with contextlib.suppress(InputLimitError, InvalidJsonError):
        parse_json(data, SMALL)


# ----- XML ------------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<rss>&lol3;</rss>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss><channel><title>&xxe;</title></channel></rss>"""


@pytest.mark.parametrize("document", [BILLION_LAUGHS, XXE])
def test_entity_declarations_are_refused(document: bytes) -> None:
    with pytest.raises(UnsafeXmlError) as caught:
        check_xml(document, what="the feed")
    assert caught.value.line == 2


def test_a_doctype_without_internal_subset_is_allowed() -> None:
    check_xml(
        b'<?xml version="1.0"?>\n<!DOCTYPE rss PUBLIC'
        b' "-//Netscape Communications//DTD RSS 0.91//EN" "http://my.netscape.com/publish/formats/rss-0.91.dtd">\n'
        b'<rss version="0.91"/>'
    )


def test_xml_depth_elements_attributes_and_text_name_the_line() -> None:
    limits = XmlLimits(max_depth=3, max_elements=5, max_attribute_chars=20, max_text_chars=10)
    cases = {
        "max_depth": b"<a>\n<b>\n<c>\n<d/></c></b></a>",
        "max_elements": b"<a>\n" + b"<b/>\n" * 5 + b"</a>",
        "max_attribute_chars": b'<a>\n<b x="' + b"y" * 30 + b'"/></a>',
        "max_text_chars": b"<a>\n<b>" + b"t" * 11 + b"</b></a>",
    }
    for limit, document in cases.items():
        with pytest.raises(InputLimitError) as caught:
            check_xml(document, limits, what="the feed")
        assert caught.value.limit == limit
        assert caught.value.line is not None, limit
        assert caught.value.line >= 2, limit


def test_xml_size_is_checked_first() -> None:
    with pytest.raises(InputLimitError) as caught:
        check_xml(b"<a>" + b" " * 100 + b"</a>", XmlLimits(max_bytes=50))
    assert caught.value.limit == "max_bytes"


@pytest.mark.parametrize(
    ("document", "line"),
    [(b"<a>\n<b></a>", 2), (b"<a>&nbsp;</a>", 1), (b"<a>\n\n\xff</a>", 3), (b"<a>", 1)],
)
def test_malformed_xml_says_where(document: bytes, line: int) -> None:
    with pytest.raises(InvalidXmlError) as caught:
        check_xml(document)
    assert not isinstance(caught.value, UnsafeXmlError)
    assert caught.value.line == line
