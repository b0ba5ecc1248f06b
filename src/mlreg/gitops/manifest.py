"""Edit one service's entry in a deployment manifest, leaving every other byte as it was.

``production.yaml`` is reviewed, diffed and reverted line by line, so a tool edit must look like a
careful human edit: the service's ``stable`` (and ``model``) scalar is replaced in place, a
``canary:`` block is inserted under ``stable`` or removed, a new service is appended as its own
block after a blank line. Comments, key order, quoting and the other services' lines are kept.

The edit is planned on the YAML node positions (PyYAML's composer marks), applied to the text,
and then proven: the result is re-read strictly and must equal the old services with exactly that
one entry changed, and every line before and after the service's block must be byte-identical.
Anything else raises :class:`~mlreg.errors.RegistryError` instead of writing a surprising diff.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from mlreg.errors import LoadError, RegistryError
from mlreg.names import check_name, check_version
from mlreg.yamlio import load_yaml_text

__all__ = ["ServiceState", "edit_service", "services_of", "entry_state"]


@dataclass(frozen=True)
class ServiceState:
    """What a promotion sets for a service: model, stable version, optional canary."""

    model: str
    stable: str
    canary: str | None = None
    canary_percent: float | None = None

    def __post_init__(self) -> None:
        check_name(self.model, "model")
        check_version(self.stable)
        if self.canary is not None:
            check_version(self.canary)
            if self.canary_percent is None or not 0 < self.canary_percent <= 100:
                raise RegistryError("a canary needs a percent in (0, 100]")
            if self.canary == self.stable:
                raise RegistryError(f"the canary version {self.canary} is the stable version")

    def describe(self) -> str:
        text = f"{self.model}@{self.stable}"
        if self.canary:
            text += f" + canary {self.model}@{self.canary} at {self.canary_percent:g}%"
        return text


def entry_state(entry: Mapping[str, Any] | None) -> ServiceState | None:
    """The :class:`ServiceState` of a manifest entry (a dict as YAML loads it)."""
    if entry is None:
        return None
    canary = entry.get("canary") or {}
    pct = canary.get("percent")
    return ServiceState(entry["model"], entry["stable"], canary.get("version"),
                        float(pct) if pct is not None else None)


def services_of(text: bytes | str, path: str = "production.yaml") -> dict[str, dict]:
    """The ``services`` mapping of a manifest's text (strict YAML; {} when empty)."""
    data = load_yaml_text(text, path).data
    if not isinstance(data, dict):
        raise LoadError(path, "is not a YAML mapping")
    services = data.get("services") or {}
    if not isinstance(services, dict):
        raise LoadError(path, "'services' is not a mapping")
    return services


def _quote(version: str) -> str:
    return f"'{version}'"  # the version grammar has no quotes: single quotes are always safe


def _percent(p: float) -> str:
    return f"{p:g}" if "e" not in f"{p:g}" else repr(p)


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def _line_end(text: str, index: int) -> int:
    """Index just after the newline ending the line that holds ``index``."""
    nl = text.find("\n", index)
    return len(text) if nl < 0 else nl + 1


def _last_index(node: yaml.Node) -> int:
    """The index just after the last character of the node's content (not its trailing space)."""
    if isinstance(node, yaml.MappingNode) and node.value and not node.flow_style:
        return _last_index(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and node.value and not node.flow_style:
        return _last_index(node.value[-1])
    return node.end_mark.index


def _find(mapping: yaml.MappingNode, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    for k, v in mapping.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return k, v
    return None


def _compose(text: str, path: str) -> yaml.MappingNode:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise LoadError(path, f"is not valid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(root, yaml.MappingNode):
        raise LoadError(path, "is not a YAML mapping")
    return root


def _block(service: str, state: ServiceState, indent: int, step: int) -> str:
    pad, inner = " " * indent, " " * (indent + step)
    lines = [f"{pad}{service}:", f"{inner}model: {state.model}", f"{inner}stable: "
             f"{_quote(state.stable)}"]
    if state.canary:
        lines += [f"{inner}canary:", f"{inner}{' ' * step}version: {_quote(state.canary)}",
                  f"{inner}{' ' * step}percent: {_percent(state.canary_percent or 0)}"]
    return "\n".join(lines) + "\n"


def edit_service(text: str, service: str, state: ServiceState, *,
                 path: str = "production.yaml") -> str:
    """Return ``text`` with ``service`` set to ``state`` (added when missing); see the module
    docstring for what is kept and what is proven."""
    check_name(service, "service")
    old_services = services_of(text, path)
    root = _compose(text, path)
    found = _find(root, "services")
    if found is None:
        raise RegistryError(f"{path}: has no 'services:' key")
    skey, svalue = found
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement), non-overlapping
    step = 2

    if isinstance(svalue, yaml.MappingNode) and svalue.value and svalue.flow_style:
        raise RegistryError(f"{path}: 'services' is written in flow style ({{...}}); write one "
                            "block per service so that tool edits stay on their own lines")
    entry = _find(svalue, service) if isinstance(svalue, yaml.MappingNode) else None
    if entry is None:
        # A new service: its own block after a blank line, at the end of the services mapping.
        if isinstance(svalue, yaml.MappingNode) and svalue.value:
            first_key = svalue.value[0][0]
            indent = first_key.start_mark.column
            child = svalue.value[0][1]
            if isinstance(child, yaml.MappingNode) and child.value and not child.flow_style:
                step = child.value[0][0].start_mark.column - indent or 2
            at = _line_end(text, _last_index(svalue) - 1) if _last_index(svalue) else len(text)
            block = _block(service, state, indent, step)
            prefix = "" if text[:at].endswith("\n") else "\n"
            edits.append((at, at, f"{prefix}\n{block}"))
        else:
            # "services: {}" or "services:" with nothing: replace the value with the first block.
            indent = skey.start_mark.column + 2
            block = _block(service, state, indent, step)
            if isinstance(svalue, (yaml.MappingNode, yaml.ScalarNode)) and \
                    svalue.start_mark.index != svalue.end_mark.index:
                edits.append((svalue.start_mark.index - (1 if text[
                    svalue.start_mark.index - 1] == " " else 0), svalue.end_mark.index,
                    "\n" + block.rstrip("\n")))
            else:
                at = _line_end(text, skey.end_mark.index)
                edits.append((at, at, block))
    else:
        key, value = entry
        if not isinstance(value, yaml.MappingNode) or value.flow_style:
            raise RegistryError(f"{path}: service {service!r} is not written as a block "
                                "mapping; write it as one block so that tool edits stay local")
        for name in ("model", "stable"):
            if _find(value, name) is None:
                raise RegistryError(f"{path}: service {service!r} has no {name!r}")
        _, model_node = _find(value, "model")  # type: ignore[misc]
        stable_key, stable_node = _find(value, "stable")  # type: ignore[misc]
        old = entry_state(old_services[service])
        assert old is not None
        if state.model != old.model:
            edits.append((model_node.start_mark.index, model_node.end_mark.index, state.model))
        if state.stable != old.stable:
            edits.append((stable_node.start_mark.index, stable_node.end_mark.index,
                          _quote(state.stable)))
        canary = _find(value, "canary")
        indent = stable_key.start_mark.column
        if state.canary and canary is None:
            at = _line_end(text, _last_index(stable_node) - 1)
            pad, inner = " " * indent, " " * (indent + step)
            edits.append((at, at, f"{pad}canary:\n{inner}version: {_quote(state.canary)}\n"
                                  f"{inner}percent: {_percent(state.canary_percent or 0)}\n"))
        elif state.canary and canary is not None:
            ckey, cvalue = canary
            if not isinstance(cvalue, yaml.MappingNode):
                raise RegistryError(f"{path}: {service}.canary is not a mapping")
            for name, new in (("version", _quote(state.canary)),
                              ("percent", _percent(state.canary_percent or 0))):
                hit = _find(cvalue, name)
                if hit is None:
                    raise RegistryError(f"{path}: {service}.canary has no {name!r}")
                node = hit[1]
                same = (name == "version" and state.canary == old.canary) or (
                    name == "percent" and state.canary_percent == old.canary_percent)
                if not same:
                    edits.append((node.start_mark.index, node.end_mark.index, new))
        elif not state.canary and canary is not None:
            ckey, cvalue = canary
            start = _line_start(text, ckey.start_mark.index)
            if text[start:ckey.start_mark.index].strip():
                raise RegistryError(f"{path}: {service}.canary does not start its own line")
            end = _line_end(text, _last_index(cvalue) - 1)
            edits.append((start, end, ""))
    new_text = _apply(text, edits)
    _prove(text, new_text, old_services, service, state, path)
    return new_text


def _apply(text: str, edits: list[tuple[int, int, str]]) -> str:
    out = text
    for start, end, repl in sorted(edits, key=lambda e: e[0], reverse=True):
        out = out[:start] + repl + out[end:]
    return out


def _prove(old_text: str, new_text: str, old_services: dict, service: str, state: ServiceState,
           path: str) -> None:
    """The edit changed exactly the service's entry and nothing outside its lines."""
    new_services = services_of(new_text, path)
    expected = {k: dict(v) for k, v in old_services.items()}
    entry = dict(expected.get(service) or {})
    entry["model"], entry["stable"] = state.model, state.stable
    if state.canary:
        entry["canary"] = {"version": state.canary, "percent": state.canary_percent}
    else:
        entry.pop("canary", None)
    expected[service] = entry
    norm = _normalise(new_services)
    if norm != _normalise(expected) or list(new_services) != list(expected):
        raise RegistryError(f"{path}: editing service {service!r} would change more than its "
                            "entry; edit the file by hand (one block per service)")
    old_lines, new_lines = old_text.splitlines(True), new_text.splitlines(True)
    prefix = 0
    while prefix < min(len(old_lines), len(new_lines)) and \
            old_lines[prefix] == new_lines[prefix]:
        prefix += 1
    suffix = 0
    while suffix < min(len(old_lines), len(new_lines)) - prefix and \
            old_lines[-1 - suffix] == new_lines[-1 - suffix]:
        suffix += 1
    changed = new_lines[prefix:len(new_lines) - suffix]
    others = [s for s in old_services if s != service]
    for line in changed:
        stripped = line.strip()
        for other in others:
            if stripped.startswith(f"{other}:"):
                raise RegistryError(f"{path}: editing {service!r} would touch the lines of "
                                    f"{other!r}; keep one block per service")


def _normalise(services: Mapping[str, Any]) -> dict:
    out = {}
    for name, entry in services.items():
        e = dict(entry)
        if "canary" in e and e["canary"] is not None:
            c = dict(e["canary"])
            if c.get("percent") is not None:
                c["percent"] = float(c["percent"])
            e["canary"] = c
        out[name] = e
    return out
