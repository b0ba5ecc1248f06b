"""Build the example registry at the top of this repository, deterministically.

    python examples/build_example.py

Writes models/*/model.yaml, the lineage records, production.yaml and the files they point at in
the example artifact store (examples/store/): model artifacts and evaluation predictions. The
records are what `mlreg capture` writes for a real job; here the fingerprints are fixed so the
example stays stable across machines. Everything is seeded: running it twice changes nothing.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STORE = "examples/store"
sys.path.insert(0, os.path.join(ROOT, "src"))

from mlreg.yamlio import dump_yaml  # noqa: E402

PACKAGES = {"numpy": "1.26.4", "pandas": "2.2.2", "pyarrow": "16.1.0", "scikit-learn": "1.4.2",
            "lightgbm": "4.3.0", "torch": "2.2.2"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put(rel: str, data: bytes) -> dict:
    path = os.path.join(ROOT, STORE, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
    return {"uri": f"{STORE}/{rel}", "sha256": sha(data), "size": len(data)}


def packages(changes: dict | None = None) -> dict:
    pk = dict(PACKAGES, **(changes or {}))
    lines = "".join(f"{k}=={v}\n" for k, v in sorted(pk.items()))
    return {"sha256": sha(lines.encode()), "count": len(pk), "list": dict(sorted(pk.items()))}


def parquet_bytes(table: pa.Table, compact: bool = False) -> bytes:
    buf = io.BytesIO()
    if not compact:
        pq.write_table(table, buf, compression="zstd", use_dictionary=True,
                       row_group_size=1 << 20)
        return buf.getvalue()
    # Large tables: dictionary strings, delta-coded ids, byte-split floats, strong zstd.
    strings = [f.name for f in table.schema if pa.types.is_string(f.type)]
    encodings = {f.name: "BYTE_STREAM_SPLIT" for f in table.schema
                 if pa.types.is_floating(f.type)}
    if "example_id" in table.column_names:
        encodings["example_id"] = "DELTA_BINARY_PACKED"
    pq.write_table(table, buf, compression="zstd", compression_level=19,
                   use_dictionary=strings or False, column_encoding=encodings or None,
                   row_group_size=1 << 20)
    return buf.getvalue()


FRAUD_ROWS = 800_000


def fraud_eval(n: int = FRAUD_ROWS) -> tuple[dict, dict]:
    """The fraud evaluation snapshot: 800k labelled transactions and the true log-odds.

    Large enough that the seed's gates are decided by the models, not by noise: the smallest of
    the top-5 traffic slices (device=web, 22%) holds about 176k rows, so a perfectly calibrated
    model's slope there has a standard error near 0.006, against the +/- 0.02 tolerance.
    """
    rng = np.random.default_rng(20240125)
    country = rng.choice(["US", "GB", "DE", "BR", "IN", "FR"], n,
                         p=[.45, .25, .10, .08, .07, .05])
    device = rng.choice(["ios", "android", "web"], n, p=[.42, .36, .22])
    age = rng.choice(["18-29", "30-49", "50+"], n, p=[.30, .45, .25])
    x = rng.normal(size=(n, 4))
    web, br = device == "web", country == "BR"
    base = -3.0 + 1.5 * x[:, 0] - 1.1 * x[:, 1] + 0.7 * x[:, 3] + 0.5 * br
    logit = base + 1.2 * x[:, 2] * web  # web traffic carries one more signal
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    cols = {"example_id": np.arange(n, dtype=np.int64), "label": label, "country": country,
            "device": device, "age_band": age}
    return cols, {"logit": logit, "base": base, "web": web, "us": country == "US",
                  "senior": age == "50+"}


def fraud_scores(z: dict, version: str) -> np.ndarray:
    """Scores as each version's model would output them (float32, as served)."""
    if version == "126":    # misses the web signal: lower AUC, still calibrated on average
        logit = z["base"] + 0.35 * z["web"]
    elif version == "127":  # learns it: the true probability, calibrated on every slice
        logit = z["logit"]
    else:  # 128: overconfident on web traffic, and flags the 50+ band from p = 0.4 on
        p = 1 / (1 + np.exp(-z["logit"] * np.where(z["web"], 1.2, 1.0)))
        true = 1 / (1 + np.exp(-z["logit"]))
        return np.where(z["senior"] & (true >= 0.4) & (p < 0.5), 0.5, p).astype(np.float32)
    return (1 / (1 + np.exp(-logit))).astype(np.float32)


def record(model: str, version: str, **kw) -> dict:
    rec = {"schema": "mlreg/record/v1", "model": model, "version": version}
    rec.update(kw)
    return rec


def write(rel: str, data: dict) -> None:
    path = os.path.join(ROOT, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(dump_yaml(data))


def env(python: str = "3.11.7", pk: dict | None = None) -> dict:
    return {
        "python": {"version": python, "implementation": "CPython"},
        "os": {"system": "Linux", "release": "5.15.0-1051-aws", "platform": "Linux-x86_64"},
        "cpu": {"model": "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", "cores": 32,
                "arch": "x86_64"},
        "memory_bytes": 256 * 1024**3,
        "packages": packages(pk),
        "container_image": "registry.example.com/ml/train@sha256:" + sha(python.encode()),
        "ci_run_url": "https://ci.example.com/ml/fraud-training/runs/" + sha(python.encode())[:8],
    }


def gpu(driver: str = "535.129.03", cuda: str = "12.2") -> dict:
    return {"gpu": {"present": True, "type": "NVIDIA A10G", "count": 1, "memory_mb": 23028,
                    "driver": driver, "cuda": cuda, "cudnn": "8.9.2", "source": "nvidia-smi"}}


def main() -> None:
    # ---- fraud: v126 (serving), v127 (the seed's candidate), v128 (violates the policy) ----
    cols, truth = fraud_eval()
    eval_snapshot = {"uri": "s3://lake/fraud/eval/dt=2024-01-25/", "immutable": True,
                     "version_id": "3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY", "rows": len(cols["label"]),
                     "partitions": {"dt": "2024-01-25"}}
    fraud = {
        "126": dict(created="2024-01-11T06:12:40Z", commit="7b21d0c4e9a1f6b3d2c58e0a9f4b7c1d2e3f4a5b",
                    window=("2023-12-27", "2024-01-09"), lr=0.002, p99=61.0, p50=18.5,
                    driver="535.104.05", cuda="12.2", pk=None),
        "127": dict(created="2024-01-25T07:40:02Z", commit="f3a9c71e2b8d4a6c9e0f1b2d3c4a5e6f7a8b9c0d",
                    window=("2024-01-10", "2024-01-24"), lr=0.001, p99=74.0, p50=21.0,
                    driver="535.129.03", cuda="12.2", pk={"lightgbm": "4.3.0", "torch": "2.2.2",
                                                          "pandas": "2.2.2"}),
        # Trained with a reweighted loss: still beats 126 on AUC, but overconfident on web
        # traffic (which drags the US and GB slopes too) and flagging the 50+ age band more
        # often (a precision gap across age bands): it fails the fraud policy.
        "128": dict(created="2024-01-29T09:15:27Z", commit="0d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e",
                    window=("2024-01-14", "2024-01-28"), lr=0.001, p99=83.0, p50=22.5,
                    driver="535.129.03", cuda="12.2", pk={"lightgbm": "4.3.0", "torch": "2.2.2",
                                                          "pandas": "2.2.2"}),
    }
    parents = {"127": "126", "128": "127"}
    train_rows = {"126": 45_870_113, "127": 48_113_902, "128": 48_730_544}
    offline = {"126": (0.0745, 0.8931, 0.0760), "127": (0.0712, 0.9012, 0.0731),
               "128": (0.0705, 0.9030, 0.0741)}
    for v, f in fraud.items():
        score = fraud_scores(truth, v)
        table = pa.table({**{k: cols[k] for k in cols}, "score": score})
        preds = put(f"fraud/{v}/eval_predictions.parquet", parquet_bytes(table, compact=True))
        art = put(f"fraud/{v}/model.txt", f"lightgbm booster fraud v{v}\n".encode() * 64)
        start, end = f["window"]
        rec = record(
            "fraud", v, created=f["created"], owner="risk-ml@example.com",
            description=f"Card-not-present fraud model, trained on {start}..{end}.",
            **({"parent": parents[v]} if v in parents else {}),
            artifacts=[{"name": "model", **art, "format": "lightgbm", "target": "server"}],
            code={"repository": "https://github.com/acme/fraud-training", "commit": f["commit"],
                  "branch": "main", "dirty": False, "entrypoint": "train.py"},
            features=[
                {"name": "txn_amount_zscore_7d", "source": "feast://fraud/txn_stats",
                 "version": "2" if v == "126" else "3", "sha256": sha(f"txn{v}".encode())},
                {"name": "merchant_risk_30d", "source": "feast://fraud/merchant",
                 "version": "5", "sha256": sha(b"merchant5")},
                {"name": "device_velocity_1h", "source": "feast://fraud/device",
                 "version": "1", "sha256": sha(b"device1")},
            ],
            data=[
                {"role": "train", "uri": f"s3://lake/fraud/txns/dt={start}..{end}/",
                 "immutable": True, "partitions": {"dt": f"{start}..{end}"},
                 "version_id": sha(f"train{v}".encode())[:32], "rows": train_rows[v]},
                {"role": "validation", "uri": f"s3://lake/fraud/txns/dt={end}/holdout/",
                 "immutable": True, "etag": '"' + sha(f"val{v}".encode())[:32] + '"',
                 "size": 1_204_332_117, "rows": 2_400_000},
                {"role": "eval", **eval_snapshot},
            ],
            hyperparameters={"learning_rate": f["lr"], "batch_size": 2048, "num_leaves": 255,
                             "n_estimators": 1200, "objective": "binary"},
            seeds={"values": {"python": int(v), "numpy": int(v), "lightgbm": 42},
                   "determinism": {"PYTHONHASHSEED": "0", "deterministic": True}},
            environment=env(pk=f["pk"]),
            hardware=gpu(f["driver"], f["cuda"]),
            metrics={"training": {"logloss": offline[v][0]},
                     "validation": {"auc": offline[v][1], "logloss": offline[v][2]}},
            evaluation={"snapshot": eval_snapshot,
                        "predictions": {**preds, "format": "parquet", "id_column": "example_id",
                                        "label_column": "label", "score_column": "score"}},
            operational={"latency": {"p50_ms": f["p50"], "p99_ms": f["p99"],
                                     "hardware": "c6i.2xlarge",
                                     "load_profile": "replay 2024-01-24 peak, 800 rps"}},
            capture={"tool": "mlreg 0.1.0", "mode": "example"},
        )
        write(f"models/fraud/{v}.yaml", rec)
    write("models/fraud/model.yaml", {
        "schema": "mlreg/model/v1", "name": "fraud", "owner": "risk-ml@example.com",
        "reviewers": ["@acme/risk-ml"], "task": "binary_classification",
        "description": "Card-not-present transaction fraud (Uber-style, from the seed).",
        "label_column": "label", "id_column": "example_id",
        "slice_columns": ["country", "device"], "slice_crosses": [["country", "device"]],
        "protected_columns": ["age_band"],
        "deployment_targets": [{"name": "server", "format": "lightgbm"}]})

    # ---- recsys: three surfaces (Netflix-style) ----
    # One replay snapshot (queries, relevance labels, surfaces) scored by both versions.
    rng = np.random.default_rng(7)
    nq, per = 2000, 20
    qid = np.repeat(np.arange(nq, dtype=np.int64), per)
    rel = (rng.random(nq * per) < 0.1).astype(np.int8)
    surface = np.repeat(rng.choice(["homepage", "search", "post-play"], nq), per)
    for v, created, commit in (("41", "2024-02-20T03:00:00Z", "1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d"),
                               ("42", "2024-03-01T03:00:00Z", "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b")):
        score = np.clip(rel * (0.3 if v == "42" else 0.2) + rng.random(nq * per) * 0.7, 0, 1)
        table = pa.table({"example_id": np.arange(nq * per, dtype=np.int64), "query_id": qid,
                          "label": rel, "score": score, "surface": surface})
        preds = put(f"recsys/{v}/eval_predictions.parquet", parquet_bytes(table))
        art = put(f"recsys/{v}/model.pt", f"two-tower recsys v{v}\n".encode() * 128)
        snap = {"uri": "s3://lake/recsys/replay/dt=2024-02-28/", "immutable": True,
                "etag": '"9f0e1d2c3b4a59687766554433221100"', "rows": nq * per}
        write(f"models/recsys/{v}.yaml", record(
            "recsys", v, created=created, owner="personalization@example.com",
            **({"parent": "41"} if v == "42" else {}),
            artifacts=[{"name": "model", **art, "format": "torchscript", "target": "server"}],
            code={"repository": "https://github.com/acme/recsys", "commit": commit,
                  "branch": "main", "dirty": False},
            features=[{"name": "watch_history_emb", "source": "feast://recsys/history",
                       "version": "7", "sha256": sha(b"hist7")}],
            data=[{"role": "train", "uri": f"s3://lake/recsys/plays/dt=2024-02-{int(v) - 27:02d}/",
                   "immutable": True, "partitions": {"dt": f"2024-02-{int(v) - 27:02d}"},
                   "rows": 912_000_000},
                  {"role": "eval", **snap}],
            hyperparameters={"embedding_dim": 128, "learning_rate": 0.0005, "batch_size": 8192,
                             "epochs": 3},
            seeds={"values": {"python": 0, "numpy": 0, "torch": 0},
                   "determinism": {"PYTHONHASHSEED": "0", "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
                                   "torch.use_deterministic_algorithms": True}},
            environment=env(pk={"torch": "2.2.2" if v == "42" else "2.1.2"}),
            hardware={"gpu": {"present": True, "type": "NVIDIA A100-SXM4-80GB", "count": 8,
                              "memory_mb": 81920, "driver": "535.129.03", "cuda": "12.2",
                              "cudnn": "8.9.2", "source": "nvidia-smi"}},
            metrics={"validation": {"precision_at_10": 0.31 if v == "42" else 0.29,
                                    "ndcg_at_20": 0.44 if v == "42" else 0.42}},
            evaluation={"snapshot": snap, "predictions": {**preds, "format": "parquet",
                                                          "id_column": "example_id",
                                                          "label_column": "label",
                                                          "score_column": "score",
                                                          "query_column": "query_id"}},
            operational={"latency": {"p50_ms": 9.0, "p99_ms": 38.0, "hardware": "c6i.2xlarge",
                                     "load_profile": "homepage replay, 2k rps"}},
            capture={"tool": "mlreg 0.1.0", "mode": "example"},
        ))
    write("models/recsys/model.yaml", {
        "schema": "mlreg/model/v1", "name": "recsys", "owner": "personalization@example.com",
        "reviewers": ["@acme/personalization"], "task": "ranking",
        "description": "Two-tower recommender serving the homepage, search and post-play rows.",
        "label_column": "label", "id_column": "example_id", "query_column": "query_id",
        "slice_columns": ["surface"]})

    # ---- photo-tagger: server model plus a quantized mobile variant ----
    server = put("photo-tagger/3/model.savedmodel.tar", b"savedmodel fp32\n" * 4096)
    mobile = put("photo-tagger/3/model.int8.tflite", b"tflite int8\n" * 512)
    write("models/photo-tagger/3.yaml", record(
        "photo-tagger", "3", created="2024-03-05T12:00:00Z", owner="vision@example.com",
        artifacts=[{"name": "model", **server, "format": "tf-savedmodel", "target": "server"},
                   {"name": "mobile-int8", **mobile, "format": "tflite", "target": "mobile",
                    "variant_of": "model", "quantization": "int8"}],
        code={"repository": "https://github.com/acme/vision", "commit":
              "abcdef0123456789abcdef0123456789abcdef01", "dirty": False},
        data=[{"role": "train", "uri": "s3://lake/vision/photos/snapshot=2024-03-01/",
               "immutable": True, "snapshot_id": "2024-03-01", "rows": 12_000_000}],
        hyperparameters={"backbone": "efficientnet-b0", "epochs": 30, "learning_rate": 0.01},
        seeds={"values": {"python": 1, "numpy": 1, "tensorflow": 1},
               "determinism": {"TF_DETERMINISTIC_OPS": "1"}},
        environment=env(pk={"tensorflow": "2.15.0"}),
        hardware=gpu(),
        metrics={"validation": {"top1_accuracy": 0.874, "top1_accuracy_int8": 0.856}},
        operational={"latency": {"p50_ms": 12.0, "p99_ms": 31.0, "hardware": "pixel-8",
                                 "load_profile": "single image, on device"}},
        capture={"tool": "mlreg 0.1.0", "mode": "example"},
    ))
    write("models/photo-tagger/model.yaml", {
        "schema": "mlreg/model/v1", "name": "photo-tagger", "owner": "vision@example.com",
        "task": "multiclass", "description": "Photo tagging, on server and quantized on device.",
        "deployment_targets": [{"name": "server", "format": "tf-savedmodel"},
                               {"name": "mobile", "format": "tflite"}]})

    with open(os.path.join(ROOT, "production.yaml"), "w", encoding="utf-8") as fh:
        fh.write(MANIFEST)


MANIFEST = """\
schema: mlreg/deployments/v1
# Desired state: what serves each service. One block per service, separated by a blank
# line, so that reverting one service's promotion never conflicts with another's.
services:
  fraud-scoring:
    model: fraud
    stable: '126'
    target: server

  homepage:
    model: recsys
    stable: '42'
    surface: homepage

  search:
    model: recsys
    stable: '42'
    surface: search

  post-play:
    model: recsys
    stable: '41'
    surface: post-play

  photo-tagger-mobile:
    model: photo-tagger
    stable: '3'
    target: mobile
"""

if __name__ == "__main__":
    main()
