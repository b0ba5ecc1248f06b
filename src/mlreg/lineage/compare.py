"""Compare the environment a version was trained in with the one here, as data.

:func:`current_state` probes this machine the same way capture did; :func:`compare_state` is a
pure function from (record, current state) to a :class:`Comparison`: the exact differences
(Python, OS and kernel, CPU, every package added, removed or changed, container image, GPU type,
count, driver, CUDA and cuDNN, determinism variables, the code commit and uncommitted changes)
and notes about what could not be compared. The CLI renders it (``mlreg reproduce``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlreg.lineage.fingerprint import PROBE_TIMEOUT, take_fingerprint
from mlreg.lineage.seeding import DETERMINISM_ENV, determinism_env

__all__ = ["Difference", "Comparison", "current_state", "compare_state"]

_MISSING = None


@dataclass(frozen=True)
class Difference:
    """One fact that differs: ``field`` (e.g. ``packages.numpy``), its recorded and current value."""

    field: str
    recorded: Any
    current: Any

    @property
    def change(self) -> str:
        if self.recorded is _MISSING:
            return "added"
        if self.current is _MISSING:
            return "removed"
        return "changed"

    def __str__(self) -> str:
        if self.change == "added":
            return f"{self.field}: added {self.current} (not in the record)"
        if self.change == "removed":
            return f"{self.field}: removed (recorded {self.recorded}, absent here)"
        return f"{self.field}: {self.recorded} -> {self.current}"

    def to_dict(self) -> dict:
        return {"field": self.field, "change": self.change, "recorded": self.recorded,
                "current": self.current}


@dataclass
class Comparison:
    """Differences between a record's environment and the current one, plus notes."""

    differences: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.differences

    def to_dict(self) -> dict:
        return {"identical": self.identical,
                "differences": [d.to_dict() for d in self.differences], "notes": self.notes}


def current_state(code_dir: str | None = None, *, exclude: Iterable[str] = (),
                  python: str | None = None, timeout: float = PROBE_TIMEOUT,
                  environ: Mapping[str, str] | None = None) -> dict:
    """This machine's state, shaped like a record: code, environment, hardware, determinism."""
    fp = take_fingerprint(code_dir or os.getcwd(), exclude=exclude, python=python,
                          timeout=timeout, environ=environ)
    return {"code": fp.code, "code_error": fp.code_error, "environment": fp.environment,
            "hardware": fp.hardware, "determinism": determinism_env(environ)}


def _get(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, Mapping):
            return None
        doc = doc.get(key)
    return doc


def _same(diffs: list[Difference], name: str, recorded: Any, current: Any) -> None:
    if recorded != current:
        diffs.append(Difference(name, recorded, current))


def compare_state(record: Mapping[str, Any], current: Mapping[str, Any]) -> Comparison:
    """What differs between ``record`` (a lineage record) and ``current`` (:func:`current_state`)."""
    out = Comparison()
    diffs = out.differences
    renv, cenv = record.get("environment") or {}, current.get("environment") or {}

    for key in ("version", "implementation"):
        _same(diffs, f"python.{key}", _get(renv, "python", key), _get(cenv, "python", key))
    for key in ("system", "release"):
        _same(diffs, f"os.{key}", _get(renv, "os", key), _get(cenv, "os", key))
    for key in ("model", "arch", "cores"):
        _same(diffs, f"cpu.{key}", _get(renv, "cpu", key), _get(cenv, "cpu", key))

    rpk, cpk = renv.get("packages") or {}, cenv.get("packages") or {}
    rlist, clist = rpk.get("list"), cpk.get("list")
    if isinstance(rlist, Mapping) and isinstance(clist, Mapping):
        for name in sorted(set(rlist) | set(clist)):
            _same(diffs, f"packages.{name}", rlist.get(name), clist.get(name))
    elif rpk.get("sha256") != cpk.get("sha256"):
        diffs.append(Difference("packages.sha256", rpk.get("sha256"), cpk.get("sha256")))
        out.notes.append("the record keeps only the digest of its package list, so the "
                         "changed packages cannot be named")
    _same(diffs, "container_image", renv.get("container_image"), cenv.get("container_image"))

    rgpu = _get(record, "hardware", "gpu") or {}
    cgpu = _get(current, "hardware", "gpu") or {}
    _same(diffs, "gpu.present", bool(rgpu.get("present")), bool(cgpu.get("present")))
    if rgpu.get("present") or cgpu.get("present"):
        for key in ("type", "count", "driver", "cuda", "cudnn"):
            _same(diffs, f"gpu.{key}", rgpu.get(key), cgpu.get(key))

    rdet = _get(record, "seeds", "determinism") or {}
    cdet = current.get("determinism") or {}
    for key in DETERMINISM_ENV:
        if key in rdet:
            _same(diffs, f"determinism.{key}", rdet.get(key), cdet.get(key))
    if not _get(record, "seeds", "values"):
        out.notes.append("the record has no RNG seeds: the run may not be repeatable")

    rcode, ccode = record.get("code") or {}, current.get("code")
    if ccode is None:
        out.notes.append(f"code not compared: {current.get('code_error') or 'no git repository'}")
    else:
        _same(diffs, "code.repository", rcode.get("repository"), ccode.get("repository"))
        _same(diffs, "code.commit", rcode.get("commit"), ccode.get("commit"))
        if bool(rcode.get("dirty")) != bool(ccode.get("dirty")):
            diffs.append(Difference("code.dirty", bool(rcode.get("dirty")),
                                    bool(ccode.get("dirty"))))
        elif rcode.get("dirty"):
            _same(diffs, "code.diff_sha256", rcode.get("diff_sha256"), ccode.get("diff_sha256"))
    if rcode.get("dirty"):
        out.notes.append(f"the recorded code had uncommitted changes (diff sha256 "
                         f"{str(rcode.get('diff_sha256'))[:12]}); only a working tree with the "
                         "same changes matches it")

    for doc in (renv, record.get("hardware") or {}):
        for probe, reason in sorted((doc.get("unknown") or {}).items()):
            out.notes.append(f"the record could not tell {probe}: {reason}")
    return out
