"""A corpus of malformed registry inputs: each one exits 2 with a one-line message naming the
file and the field, prints no traceback, and leaves the registry exactly as it was."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from testkit import tree_digest

REC = "models/fraud/127.yaml"
MANIFEST = "production.yaml"


def edit(rel: str, old: str, new: str, count: int = 1) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        p = root / rel
        text = p.read_text()
        assert old in text, f"corpus case is stale: {old!r} not in {rel}"
        p.write_text(text.replace(old, new, count))
    return apply


def write(rel: str, data: bytes | str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
    return apply


def raw_edit(rel: str, old: bytes, new: bytes) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        p = root / rel
        data = p.read_bytes()
        assert old in data
        p.write_bytes(data.replace(old, new, 1))
    return apply


def drop_line(rel: str, prefix: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        p = root / rel
        lines = p.read_text().splitlines(keepends=True)
        hit = [i for i, line in enumerate(lines) if line.startswith(prefix)]
        assert hit, f"corpus case is stale: no line starts with {prefix!r}"
        del lines[hit[0]]
        p.write_text("".join(lines))
    return apply


def append(rel: str, text: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        p = root / rel
        p.write_text(p.read_text() + text)
    return apply


def truncate(rel: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        p = root / rel
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])
    return apply


def big_file(rel: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        p = root / rel
        with open(p, "ab") as fh:
            line = b"# " + b"x" * 1022 + b"\n"
            for _ in range(50 * 1024):  # 50 MB
                fh.write(line)
    return apply


# (id, mutation, substrings the message must contain: the file and the field or problem)
CASES = [
    ("duplicate-key", append(REC, "owner: someone-else\n"), [REC, "duplicate key 'owner'"]),
    ("version-float", edit(REC, "version: '127'", "version: 1.10"),
     [REC, "version", "quote it"]),
    ("yes-no-boolean", edit(REC, "dirty: false", "dirty: no"), [REC, "code.dirty", "boolean"]),
    ("on-boolean", edit(REC, "dirty: false", "dirty: on"), [REC, "code.dirty", "boolean"]),
    ("unquoted-date", edit(REC, "created: '2024-01-25T07:40:02Z'", "created: 2024-01-25"),
     [REC, "created", "quote it"]),
    ("anchor-alias", edit(REC, "hyperparameters:\n", "hyperparameters: &hp\n"),
     [REC, "anchor"]),
    ("alias-use", append(REC, "tags: *x\n"), [REC, "alias"]),
    ("merge-key", edit(REC, "  learning_rate: 0.001\n", "  learning_rate: 0.001\n  <<: {a: 1}\n"),
     [REC, "merge key"]),
    ("python-tag", edit(REC, "objective: binary", "objective: !!python/name:os.system ''"),
     [REC, "tag"]),
    ("oversize-50mb", big_file(REC), [REC, "cap"]),
    ("non-utf8", raw_edit(REC, b"description: Card", b"description: Caf\xe9 Card"),
     [REC, "UTF-8"]),
    ("binary", write("models/fraud/129.yaml", b"\x89PNG\r\n\x1a\n\x00\x00\x00"),
     ["models/fraud/129.yaml", "binary"]),
    ("truncated", truncate(REC), [REC]),
    ("empty", write("models/fraud/129.yaml", ""), ["models/fraud/129.yaml", "empty"]),
    ("not-a-mapping", write("models/fraud/129.yaml", "- a\n- b\n"),
     ["models/fraud/129.yaml", "mapping"]),
    ("missing-owner", edit(REC, "owner: risk-ml@example.com\n", ""),
     [REC, "'owner' is a required property"]),
    ("wrong-type-size", edit(REC, "  size: 1792\n", "  size: big\n"), [REC, "artifacts[0].size"]),
    ("bad-sha256", edit(REC, "  sha256: ", "  sha256: zz", 1), [REC, "artifacts[0].sha256"]),
    ("unknown-field", append(REC, "colour: blue\n"), [REC, "colour"]),
    ("bad-model-name", edit(REC, "model: fraud\n", "model: Fraud\n"), [REC, "model", "Fraud"]),
    ("path-mismatch", edit(REC, "version: '127'", "version: '128'"), [REC, "version", "128"]),
    ("credential-uri", edit(REC, "uri: examples/store/fraud/127/model.txt",
                            "uri: s3://AKIA:secret@bucket/model.txt"),
     [REC, "artifacts[0].uri", "credentials"]),
    ("signed-url", edit(REC, "uri: examples/store/fraud/127/model.txt",
                        "uri: https://bucket.s3.amazonaws.com/m?X-Amz-Signature=abc"),
     [REC, "artifacts[0].uri", "X-Amz-Signature"]),
    ("dirty-without-diff", edit(REC, "dirty: false", "dirty: true"),
     [REC, "diff_sha256"]),
    ("immutable-without-proof", drop_line(REC, "  etag: "), [REC, "data[1]", "needs proof"]),
    ("canary-over-100", edit(MANIFEST, "    stable: '126'\n",
                             "    stable: '126'\n    canary:\n      version: '127'\n"
                             "      percent: 150\n"),
     [MANIFEST, "canary.percent", "150"]),
    ("deployed-missing-version", edit(MANIFEST, "stable: '126'", "stable: '999'"),
     [MANIFEST, "fraud-scoring.stable", "fraud@999"]),
    ("service-bad-name", edit(MANIFEST, "  homepage:\n", "  'home page':\n"),
     [MANIFEST, "home page"]),
    ("canary-equals-stable", edit(MANIFEST, "    stable: '126'\n",
                                  "    stable: '126'\n    canary:\n      version: '126'\n"
                                  "      percent: 5\n"),
     [MANIFEST, "canary"]),
    ("model-file-name-mismatch", edit("models/recsys/model.yaml", "name: recsys", "name: recsys2"),
     ["models/recsys/model.yaml", "name"]),
    ("records-without-model-file", write("models/orphan/1.yaml", "x: 1\n"),
     ["models/orphan", "model.yaml"]),
    ("record-name-not-version", write("models/fraud/latest.yaml", "x: 1\n"),
     ["models/fraud/latest.yaml", "not a valid version"]),
    ("unsupported-schema-version", edit(REC, "schema: mlreg/record/v1", "schema: mlreg/record/v9"),
     [REC, "schema", "mlreg/record/v9"]),
    ("octal-int", edit(REC, "batch_size: 2048", "batch_size: 0755"), [REC, "batch_size", "octal"]),
    ("settings-credential-store", edit("mlreg.yaml", "artifact_store: examples/store",
                                       "artifact_store: s3://key:secret@bucket/x"),
     ["mlreg.yaml", "artifact_store", "credentials"]),
    ("uppercase-model-folder", write("models/Fraud/1.yaml", "x: 1\n"),
     ["models/Fraud/1.yaml", "not a valid name"]),
    ("bad-indentation", edit(REC, "  dirty: false\n", "    dirty: false\n  x\n"), [REC, "YAML"]),
    ("non-string-key", append(REC, "1: one\n"), [REC, "not a string"]),
    ("path-traversal-name", edit(MANIFEST, "model: fraud", "model: ../fraud"),
     [MANIFEST, "fraud-scoring.model"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_malformed_input_exits_2_naming_file_and_field(case, example_registry: Path,
                                                       run_cli) -> None:
    _, mutate, expected = case
    mutate(example_registry)
    before = tree_digest(example_registry)
    result = run_cli("validate", str(example_registry))
    text = result.out + result.err
    assert result.code == 2, result
    assert "Traceback" not in text
    for needle in expected:
        assert needle in text, f"{needle!r} missing from: {text[-2000:]}"
    assert tree_digest(example_registry) == before


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 30


def test_show_on_malformed_record_is_one_line(example_registry: Path, run_cli) -> None:
    edit(REC, "dirty: false", "dirty: no")(example_registry)
    result = run_cli("show", "fraud@127", "-C", str(example_registry))
    assert result.code == 2
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: models/fraud/127.yaml:")
    assert "code.dirty" in lines[0]


def test_example_registry_is_clean(example_registry: Path, run_cli) -> None:
    result = run_cli("validate", str(example_registry))
    assert result.code == 0, result
    assert "no problems" in result.out
