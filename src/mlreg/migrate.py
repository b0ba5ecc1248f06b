"""Schema migrations. Each step maps one schema key to the next, as a pure function on data.

Only v1 exists today, so :data:`STEPS` is empty and every file is current; the command and the
mechanism exist from day one so that v2 ships with its step and a test, not with a scramble.
"""

from __future__ import annotations

from collections.abc import Callable

from mlreg.registry import Registry

__all__ = ["STEPS", "migrate_registry"]

# old schema key -> (new schema key, function old data -> new data)
STEPS: dict[str, tuple[str, Callable[[dict], dict]]] = {}


def migrate_registry(reg: Registry, *, apply: bool = False) -> list[tuple[str, str, str]]:
    """Files whose schema key has a migration step: (file, old key, new key)."""
    from mlreg.yamlio import dump_yaml, load_yaml_text

    plan = []
    for f in reg.files():
        if not f.endswith(".yaml"):
            continue
        raw = reg.read_bytes(f)
        if raw is None:
            continue
        data = load_yaml_text(raw, f).data
        key = data.get("schema") if isinstance(data, dict) else None
        if key in STEPS:
            new_key, step = STEPS[key]
            plan.append((f, key, new_key))
            if apply and reg.root:
                import os

                target = os.path.join(reg.root, f)
                tmp = target + ".tmp"
                with open(tmp, "w", encoding="utf-8") as fh:
                    fh.write(dump_yaml(step(data)))
                os.replace(tmp, target)
    return plan
