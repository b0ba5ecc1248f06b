from __future__ import annotations

import datetime as dt

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mlreg.errors import LoadError
from mlreg.yamlio import C_LOADER, dump_yaml, load_yaml_text


def test_uses_libyaml_when_present() -> None:
    assert C_LOADER == hasattr(yaml, "CSafeLoader")


@pytest.mark.parametrize(
    "text, needle",
    [
        ("a: 1\nb: 2\na: 3\n", "duplicate key 'a' (first on line 1)"),
        ("a: yes\n", "boolean"),
        ("a: Off\n", "boolean"),
        ("a: 2024-01-01\n", "date"),
        ("a: 2024-01-01 10:00:00\n", "date"),
        ("a: &x [1]\nb: *x\n", "anchor"),
        ("a: 0o17\nb: 010\n", "octal"),
        ("a: 0x1f\n", "octal, hex"),
        ("a: 1:30\n", "base-60"),
        ("a: .nan\n", "finite"),
        ("? [1, 2]\n: x\n", "not a string"),
        ("a: !!binary aGVsbG8=\n", "tag"),
        ("", "empty"),
    ],
)
def test_refuses_meaning_changing_yaml(text: str, needle: str) -> None:
    with pytest.raises(LoadError) as exc:
        load_yaml_text(text, "f.yaml")
    assert needle in str(exc.value)
    assert str(exc.value).startswith("f.yaml")


def test_error_carries_line_and_fix() -> None:
    with pytest.raises(LoadError) as exc:
        load_yaml_text("x: 1\ny:\n  z: no\n", "r.yaml")
    err = exc.value
    assert err.line == 3 and err.field == "y.z" and "quote it" in (err.fix or "")
    assert str(err).startswith("r.yaml:3: field 'y.z'")


def test_billion_laughs_is_refused_quickly() -> None:
    lol = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(9))
    with pytest.raises(LoadError, match="anchor"):
        load_yaml_text(lol, "lol.yaml")


def test_size_cap_checked_before_parsing() -> None:
    with pytest.raises(LoadError, match="cap"):
        load_yaml_text(b"a: 1\n" * 10, "big.yaml", max_bytes=20)


def test_quoted_values_are_exactly_the_strings_written() -> None:
    doc = load_yaml_text("a: 'yes'\nb: \"1.10\"\nc: '2024-01-01'\nd: |\n  no\n", "f.yaml")
    assert doc.data == {"a": "yes", "b": "1.10", "c": "2024-01-01", "d": "no\n"}


def test_coerced_numbers_are_remembered_with_their_text() -> None:
    doc = load_yaml_text("v: 1.10\nn: 127\nl: [0.5]\n", "f.yaml")
    assert doc.coerced["$.v"] == ("1.10", "number")
    assert doc.coerced["$.n"] == ("127", "integer")
    assert doc.lines["$.l[0]"] == 3


def test_dump_quotes_strings_yaml_would_coerce() -> None:
    data = {"v": "1.10", "b": "yes", "d": "2024-01-01", "n": "127", "o": "010", "nul": "null"}
    text = dump_yaml(data)
    assert load_yaml_text(text, "f.yaml").data == data
    assert "&" not in text


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20),
    st.sampled_from(["yes", "no", "on", "1.10", "2024-01-25", "0o17", "~", "127", "1:30",
                     "<<", "*x", "&a", "- a", "a: b", "#c", "'q'", '"', ""]),
)
_keys = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)
_docs = st.recursive(
    _scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(_keys, children, max_size=4)),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _docs, min_size=1, max_size=6))
def test_dump_then_load_round_trips(data: dict) -> None:
    assert load_yaml_text(dump_yaml(data), "rt.yaml").data == data


def test_records_round_trip_through_dump_and_load(example_registry) -> None:
    from mlreg.records import dump_record, load_document

    for path in sorted(example_registry.glob("models/*/[0-9]*.yaml")):
        data = load_document(path.read_bytes(), str(path), "record").data
        again = load_document(dump_record(data).encode(), "again.yaml", "record").data
        assert again == data
        assert not any(isinstance(v, (dt.date, dt.datetime)) for v in data.values())
