from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlreg.errors import InputError, InvalidName
from mlreg.names import check_name, check_uri, check_version, natural_key, parse_ref, uri_problem


@pytest.mark.parametrize("name", ["fraud", "recsys-v2", "a", "photo.tagger", "x_1", "9lives"])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "Fraud", "a/b", "..", "a..b", ".hidden", "a b", "-x",
                                  "x-", "a\\b", "é", "a" * 65, "fraud\n"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(InvalidName):
        check_name(name)


@pytest.mark.parametrize("version", ["1", "127", "2024.01.26", "1.10", "3-rc1"])
def test_valid_versions(version: str) -> None:
    assert check_version(version) == version


@pytest.mark.parametrize("version", ["latest", "v1", "model", "1/2", "1..2", "", "1 "])
def test_invalid_versions(version: str) -> None:
    with pytest.raises(InvalidName):
        check_version(version)


def test_natural_order() -> None:
    assert sorted(["10", "9", "127", "1.10", "1.2", "2"], key=natural_key) == [
        "1.2", "1.10", "2", "9", "10", "127"]


@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=30))
def test_natural_order_matches_integer_order(nums: list[int]) -> None:
    assert sorted(map(str, nums), key=natural_key) == [str(n) for n in sorted(nums)]


@pytest.mark.parametrize("uri, secret", [
    ("s3://AKIA:hunter2@bucket/key", "hunter2"), ("https://user:pw1234@host/x", "pw1234"),
    ("https://tok987@host/x", "tok987"),
    ("https://b.s3.amazonaws.com/k?X-Amz-Signature=f00d&X-Amz-Credential=2", "f00d"),
    ("https://acct.blob.core.windows.net/c/b?sv=2020&sig=abc987", "abc987"),
    ("https://storage.googleapis.com/b/o?X-Goog-Signature=beef1", "beef1"),
    ("https://h/x?token=abc123", "abc123"),
])
def test_credential_uris_are_refused_without_echoing_the_secret(uri: str, secret) -> None:
    assert uri_problem(uri)
    with pytest.raises(InputError) as exc:
        check_uri(uri, "artifacts[0].uri")
    if secret:
        assert secret not in str(exc.value)


@pytest.mark.parametrize("uri", ["s3://bucket/models/fraud/127/model.txt", "gs://b/o",
                                 "examples/store/a.bin", "file:///tmp/x", "https://github.com/a/b",
                                 "s3://lake/t/dt=2024-01-10..2024-01-24/"])
def test_plain_uris_are_fine(uri: str) -> None:
    assert uri_problem(uri) is None


def test_parse_ref() -> None:
    r = parse_ref("fraud@127")
    assert (r.model, r.version, r.service) == ("fraud", "127", None)
    assert parse_ref("fraud@latest").version == "latest"
    assert parse_ref("homepage").service == "homepage"
