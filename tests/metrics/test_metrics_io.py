"""read_predictions / join_predictions: Parquet, CSV, fsspec URIs, errors."""

from __future__ import annotations

import fsspec
import numpy as np
import pandas as pd
import pytest

from mlreg.errors import InputError, NotFound
from mlreg.metrics import join_predictions, read_predictions


@pytest.fixture
def preds() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"id": np.arange(50), "label": rng.integers(0, 2, 50),
                         "score": rng.random(50), "country": rng.choice(["US", "DE"], 50)})


def test_parquet_and_csv_roundtrip(tmp_path, preds):
    preds.to_parquet(tmp_path / "p.parquet")
    preds.to_csv(tmp_path / "p.csv", index=False)
    for name in ["p.parquet", "p.csv"]:
        got = read_predictions(tmp_path / name)
        pd.testing.assert_frame_equal(got, preds, check_dtype=False)
    got = read_predictions(str(tmp_path / "p.parquet"), columns=["label", "score"])
    assert list(got.columns) == ["label", "score"]
    got = read_predictions(f"file://{tmp_path / 'p.csv'}", columns=["score"])
    assert list(got.columns) == ["score"]


def test_parquet_directory_dataset(tmp_path, preds):
    d = tmp_path / "ds"
    d.mkdir()
    preds.iloc[:20].to_parquet(d / "part-0.parquet")
    preds.iloc[20:].to_parquet(d / "part-1.parquet")
    got = read_predictions(d)
    assert len(got) == 50 and set(got.columns) == set(preds.columns)


def test_fsspec_memory_uri(preds):
    fs = fsspec.filesystem("memory")
    with fs.open("/eval/preds.parquet", "wb") as fh:
        preds.to_parquet(fh)
    got = read_predictions("memory://eval/preds.parquet", columns=["id", "score"])
    assert got["score"].tolist() == preds["score"].tolist()
    fs.rm("/eval/preds.parquet")


def test_errors(tmp_path, preds):
    with pytest.raises(NotFound):
        read_predictions(tmp_path / "missing.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError):
        read_predictions(tmp_path / "junk.parquet")
    preds.to_parquet(tmp_path / "p.parquet")
    with pytest.raises(InputError, match="column"):
        read_predictions(tmp_path / "p.parquet", columns=["nope"])
    with pytest.raises(InputError):
        read_predictions(tmp_path / "p.parquet", format="xlsx")


def test_join_predictions(preds):
    base = preds[["id", "label"]].assign(score=preds.score / 2).iloc[::-1]
    joined = join_predictions({"candidate": preds, "baseline": base}, on="id")
    assert {"score_candidate", "score_baseline", "label", "country"} <= set(joined.columns)
    row = joined.set_index("id").loc[7]
    assert row.score_baseline == pytest.approx(row.score_candidate / 2)
    bad = base.copy()
    bad.loc[bad.index[0], "label"] = 1 - bad.loc[bad.index[0], "label"]
    with pytest.raises(InputError, match="differs"):
        join_predictions({"candidate": preds, "baseline": bad}, on="id")
    with pytest.raises(InputError, match="ids differ"):
        join_predictions({"candidate": preds, "baseline": base.iloc[1:]}, on="id")
    with pytest.raises(InputError, match="repeat"):
        join_predictions({"candidate": pd.concat([preds, preds.iloc[:1]])}, on="id")
