"""A small, real training job under mlreg's capture API (run by the lineage tests).

    python train_job.py REGISTRY LAKE OUT

Trains a scikit-learn LogisticRegression on the seeded synthetic snapshot in LAKE, writes the
model (pickle, fixed protocol), a float16 mobile variant and the evaluation predictions to OUT,
and captures everything into the registry. ``TRAIN_FAIL_AT=after_fit`` makes it crash mid-way.
"""

from __future__ import annotations

import csv
import os
import pickle
import sys
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score

from mlreg.lineage import capture


def load(path: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    features = [k for k in rows[0] if k.startswith("f")]
    x = np.array([[float(r[f]) for f in features] for r in rows])
    y = np.array([int(r["label"]) for r in rows])
    return x, y, [r["country"] for r in rows]


def main() -> None:
    registry, lake, out = sys.argv[1:4]
    os.makedirs(out, exist_ok=True)
    train_path = os.path.join(lake, "dt=2024-01-10", "train.csv")
    val_path = os.path.join(lake, "dt=2024-01-10", "validation.csv")
    eval_path = os.path.join(lake, "dt=2024-01-11", "eval.csv")
    here = os.path.dirname(os.path.abspath(__file__))

    with capture("fraud", registry=registry, task="binary_classification",
                 description="LogisticRegression on the synthetic fraud snapshot") as run:
        run.seed_everything(1234)
        run.log_dataset("train", train_path)
        run.log_dataset("validation", val_path)
        x, y, _ = load(train_path)
        xv, yv, countries = load(val_path)
        run.log_features([f"f{i}" for i in range(x.shape[1])],
                         definition=os.path.join(here, "features.yaml"))
        params = {"C": 0.5, "max_iter": 300, "solver": "lbfgs", "tol": 1e-6}
        run.log_params(params)
        model = LogisticRegression(**params).fit(x, y)
        if os.environ.get("TRAIN_FAIL_AT") == "after_fit":
            raise RuntimeError("simulated crash in the middle of training")
        p = model.predict_proba(x)[:, 1]
        pv = model.predict_proba(xv)[:, 1]
        run.log_metrics("training", {"logloss": log_loss(y, p), "auc": roc_auc_score(y, p)})
        run.log_metrics("validation", {"logloss": log_loss(yv, pv), "auc": roc_auc_score(yv, pv)})
        for country in sorted(set(countries)):
            mask = np.array([c == country for c in countries])
            run.log_metrics("validation", {"auc": roc_auc_score(yv[mask], pv[mask])},
                            slice=f"country={country}")

        model_path = os.path.join(out, "model.pkl")
        with open(model_path, "wb") as fh:
            pickle.dump(model, fh, protocol=5)
        run.log_artifact(model_path, format="sklearn-pickle", target="server")
        mobile_path = os.path.join(out, "model-fp16.bin")
        with open(mobile_path, "wb") as fh:
            fh.write(np.concatenate([model.coef_.ravel(), model.intercept_])
                     .astype("<f2").tobytes())
        run.log_artifact(mobile_path, name="mobile-fp16", format="raw-float16",
                         target="mobile", variant_of="model", quantization="fp16")

        xe, ye, ce = load(eval_path)
        pe = model.predict_proba(xe)[:, 1]
        pred_path = os.path.join(out, "eval_predictions.csv")
        with open(pred_path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["example_id", "label", "score", "country"])
            for i, (label, score, country) in enumerate(zip(ye, pe, ce, strict=True)):
                w.writerow([i, int(label), f"{score:.10f}", country])
        run.log_evaluation(pred_path, eval_path, id_column="example_id",
                           label_column="label", score_column="score")

        timings = []
        for row in xe[:200]:
            t0 = time.perf_counter()
            model.predict_proba(row.reshape(1, -1))
            timings.append((time.perf_counter() - t0) * 1000)
        run.log_latency(float(np.percentile(timings, 50)), float(np.percentile(timings, 99)),
                        "this test machine (CPU)",
                        load_profile="single-row predict_proba, 200 sequential calls")
    print(run.record["version"])


if __name__ == "__main__":
    main()
