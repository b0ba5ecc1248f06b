"""The fast manifest reader agrees with the strict YAML loader on every version of a history."""

from __future__ import annotations

import random

import pytest
from historykit import manifest

from mlreg.errors import InputError
from mlreg.history.manifest import ManifestReader, parse_manifest, services_of
from mlreg.yamlio import load_yaml_text
from testkit import ROOT


def _strict(text: str):
    try:
        return services_of(load_yaml_text(text.encode(), "m.yaml").data, "m.yaml")
    except InputError as exc:
        return type(exc).__name__


def _fast(reader: ManifestReader, text: str):
    try:
        return reader.read(text.encode(), "m.yaml")[0]
    except InputError as exc:
        return type(exc).__name__


def _edit(rng: random.Random, text: str, services: dict) -> str:
    """One random change, as people and tools make them (mostly one service's block)."""
    names = list(services)
    kind = rng.choice(["stable", "stable", "canary", "canary", "percent", "comment", "blank",
                       "add", "remove", "rename", "toplevel", "flow", "raw"])
    if kind in ("stable", "canary", "percent", "add", "remove", "rename") or not names:
        name = rng.choice(names) if names else "s0"
        s = dict(services.get(name, {"model": "m", "stable": "1"}))
        if kind == "stable":
            s["stable"] = str(rng.randint(1, 99))
        elif kind == "canary":
            if s.get("canary"):
                s.pop("canary")
                s.pop("percent", None)
            else:
                s["canary"], s["percent"] = str(rng.randint(1, 99)), rng.choice([1, 5, 12.5])
        elif kind == "percent" and s.get("canary"):
            s["percent"] = rng.choice([1, 5, 50])
        if kind == "add":
            services[f"s{rng.randint(0, 999)}"] = {"model": "m", "stable": "1"}
        elif kind == "remove" and len(names) > 1:
            services.pop(name)
        elif kind == "rename":
            services[f"r{rng.randint(0, 999)}"] = services.pop(name, s)
        else:
            services[name] = s
        return manifest(services)
    lines = text.split("\n")
    at = rng.randrange(len(lines))
    if kind == "comment":
        lines.insert(at, rng.choice(["# note", "  # indented note", "    # deeper"]))
    elif kind == "blank":
        lines.insert(at, "")
    elif kind == "toplevel":
        lines.insert(at, "extra: 1")
    elif kind == "flow":
        lines.insert(at, "  flow: {model: m, stable: '3'}")
    else:
        lines[at] = lines[at].replace("'", "", 1)  # an unquoted version, or broken YAML
    return "\n".join(lines)


@pytest.mark.parametrize("seed", range(12))
def test_reader_agrees_with_the_strict_loader_over_random_histories(seed):
    rng = random.Random(seed)
    services = {f"s{i}": {"model": "m", "stable": str(i + 1)} for i in range(rng.randint(0, 8))}
    text = manifest(services)
    reader = ManifestReader()
    for _ in range(60):
        text = _edit(rng, text, services)
        if rng.random() < 0.35:  # back to the canonical layout; otherwise edits compound
            text = manifest(services)
        assert _fast(reader, text) == _strict(text), text


def test_reader_reports_the_changed_services():
    reader = ManifestReader()
    svcs = {f"s{i}": {"model": "m", "stable": "1"} for i in range(50)}
    reader.read(manifest(svcs).encode())
    svcs["s17"] = {"model": "m", "stable": "2", "canary": "3", "percent": 5}
    states, texts = reader.read(manifest(svcs).encode())
    assert reader.changed == ["s17"]
    assert states["s17"].canary == "3" and list(states) == list(svcs)
    reader.read(manifest(svcs).encode())
    assert reader.changed == []


def test_example_manifest_and_fallbacks():
    raw = (ROOT / "production.yaml").read_bytes()
    assert ManifestReader().services(raw) == services_of(load_yaml_text(raw).data)
    flow = b"schema: mlreg/deployments/v1\nservices: {a: {model: m, stable: '1'}}\n"
    assert ManifestReader().services(flow)["a"].stable == "1"
    assert parse_manifest(b"services:\n  a:\n    model: m\n    stable: '1'\n") == {
        "services": {"a": {"model": "m", "stable": "1"}}}
    with pytest.raises(InputError):
        ManifestReader().services(b"services:\n  a:\n    model: m\n    stable: 1\n")
