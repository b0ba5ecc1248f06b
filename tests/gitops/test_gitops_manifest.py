"""Manifest edits: only the service's own lines change; comments, order and quoting stay."""

from __future__ import annotations

import difflib

import pytest

from mlreg.errors import InvalidName, RegistryError
from mlreg.gitops.manifest import ServiceState, edit_service, services_of
from testkit import ROOT

EXAMPLE = (ROOT / "production.yaml").read_text()

COMMENTED = """\
schema: mlreg/deployments/v1
# Desired state. Keep one block per service.
services:
  # the money maker
  fraud-scoring:
    model: fraud          # LightGBM
    stable: "126"         # quoted on purpose
    target: server
    description: card-not-present fraud

  homepage:
    model: recsys
    stable: '42'
    canary: {version: '41', percent: 10}   # flow style, on one line
    surface: homepage
# trailing comment
"""


def _changed_lines(old: str, new: str) -> list[str]:
    return [d for d in difflib.ndiff(old.splitlines(True), new.splitlines(True))
            if d[:2] in ("+ ", "- ")]


def _block_range(text: str, service: str) -> tuple[int, int]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"{service}:")
    end = start + 1
    while end < len(lines) and lines[end].startswith("    "):
        end += 1
    return start, end


@pytest.mark.parametrize("state", [
    ServiceState("fraud", "126", "127", 5.0),
    ServiceState("fraud", "127"),
    ServiceState("fraud", "128", "127", 12.5),
])
def test_every_other_byte_is_unchanged(state: ServiceState) -> None:
    new = edit_service(EXAMPLE, "fraud-scoring", state)
    start, end = _block_range(EXAMPLE, "fraud-scoring")
    old_lines, new_lines = EXAMPLE.splitlines(True), new.splitlines(True)
    grown = len(new_lines) - len(old_lines)
    assert new_lines[:start] == old_lines[:start]
    assert new_lines[end + grown:] == old_lines[end:]
    after = services_of(new)
    before = services_of(EXAMPLE)
    assert list(after) == list(before)  # key order
    assert {k: v for k, v in after.items() if k != "fraud-scoring"} == \
        {k: v for k, v in before.items() if k != "fraud-scoring"}
    assert after["fraud-scoring"]["stable"] == state.stable
    assert after["fraud-scoring"]["target"] == "server"


def test_canary_added_under_stable_and_removed_again_restores_the_bytes() -> None:
    with_canary = edit_service(EXAMPLE, "fraud-scoring", ServiceState("fraud", "126", "127", 5))
    assert _changed_lines(EXAMPLE, with_canary) == [
        "+     canary:\n", "+       version: '127'\n", "+       percent: 5\n"]
    assert edit_service(with_canary, "fraud-scoring", ServiceState("fraud", "126")) == EXAMPLE


def test_comments_quoting_and_flow_canary_are_kept() -> None:
    new = edit_service(COMMENTED, "fraud-scoring", ServiceState("fraud", "127"))
    assert _changed_lines(COMMENTED, new) == [
        '-     stable: "126"         # quoted on purpose\n',
        "+     stable: '127'         # quoted on purpose\n"]
    ramp = edit_service(COMMENTED, "homepage", ServiceState("recsys", "42", "41", 50))
    assert _changed_lines(COMMENTED, ramp) == [
        "-     canary: {version: '41', percent: 10}   # flow style, on one line\n",
        "+     canary: {version: '41', percent: 50}   # flow style, on one line\n"]
    dropped = edit_service(COMMENTED, "homepage", ServiceState("recsys", "42"))
    assert _changed_lines(COMMENTED, dropped) == [
        "-     canary: {version: '41', percent: 10}   # flow style, on one line\n"]
    assert "# trailing comment" in dropped and "# the money maker" in dropped


def test_new_service_is_its_own_block_after_a_blank_line() -> None:
    new = edit_service(EXAMPLE, "fraud-eu", ServiceState("fraud", "127"))
    assert new.startswith(EXAMPLE.rstrip("\n"))
    assert new.endswith("\n\n  fraud-eu:\n    model: fraud\n    stable: '127'\n")
    empty = "schema: mlreg/deployments/v1\n# none yet\nservices: {}\n"
    first = edit_service(empty, "a", ServiceState("fraud", "1"))
    assert first == ("schema: mlreg/deployments/v1\n# none yet\nservices:\n  a:\n"
                     "    model: fraud\n    stable: '1'\n")
    second = edit_service(first, "b", ServiceState("fraud", "2"))
    assert second == first + "\n  b:\n    model: fraud\n    stable: '2'\n"


def test_refusals() -> None:
    flow = "schema: mlreg/deployments/v1\nservices: {a: {model: fraud, stable: '1'}}\n"
    with pytest.raises(RegistryError, match="flow style"):
        edit_service(flow, "a", ServiceState("fraud", "2"))
    with pytest.raises(InvalidName):
        edit_service(EXAMPLE, "../etc", ServiceState("fraud", "2"))
    with pytest.raises(RegistryError, match="stable version"):
        ServiceState("fraud", "2", "2", 5)
    with pytest.raises(RegistryError, match="percent"):
        ServiceState("fraud", "2", "3", 0)
