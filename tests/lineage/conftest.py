"""Fixtures for the lineage tests: a registry inside a real git repository, a data lake."""

from __future__ import annotations

import csv
import os
import shutil

import numpy as np
import pytest
from lineage_helpers import CI_VARS, HERE, git


@pytest.fixture(autouse=True)
def _quiet_ci_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in CI_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def repo(tmp_path) -> str:
    """A git repository (branch main, one commit) holding a registry and the training code."""
    from mlreg.scaffold import init_registry

    root = str(tmp_path / "repo")
    init_registry(root)
    git(root, "config", "user.email", "ml@example.com")
    git(root, "config", "user.name", "Lineage Test")
    os.makedirs(os.path.join(root, "training"))
    for name in ("train_job.py", "features.yaml"):
        shutil.copy(os.path.join(HERE, name), os.path.join(root, "training", name))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "registry and training code")
    return root


@pytest.fixture(scope="session")
def lake(tmp_path_factory) -> str:
    """Seeded synthetic snapshots in date partitions: train, validation and eval CSV files."""
    root = str(tmp_path_factory.mktemp("lake") / "fraud")
    rng = np.random.default_rng(7)
    x = rng.normal(size=(3000, 8))
    logit = x @ np.array([1.2, -0.8, 0.6, 0.0, 0.4, -0.3, 0.0, 0.9]) - 1.5
    y = (rng.random(3000) < 1 / (1 + np.exp(-logit))).astype(int)
    country = np.random.default_rng(7).choice(["US", "GB", "DE"], size=len(y))
    parts = {("dt=2024-01-10", "train.csv"): slice(0, 2000),
             ("dt=2024-01-10", "validation.csv"): slice(2000, 2500),
             ("dt=2024-01-11", "eval.csv"): slice(2500, 3000)}
    for (part, name), rows in parts.items():
        os.makedirs(os.path.join(root, part), exist_ok=True)
        with open(os.path.join(root, part, name), "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow([f"f{i}" for i in range(x.shape[1])] + ["label", "country"])
            for xi, yi, ci in zip(x[rows], y[rows], country[rows], strict=True):
                w.writerow([f"{v:.8f}" for v in xi] + [int(yi), ci])
    return root
