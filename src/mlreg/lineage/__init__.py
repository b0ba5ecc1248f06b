"""Lineage capture: a training job ends as one complete, validated, immutable record.

    from mlreg.lineage import capture

    with capture("fraud", registry=".", owner="risk-ml@example.com") as run:
        run.seed_everything(1234)
        run.log_params(learning_rate=0.001)
        run.log_dataset("train", "data/train.parquet")
        ...
        run.log_artifact("out/model.pkl")
    run.record

Modules: :mod:`~mlreg.lineage.run` (the capture API), :mod:`~mlreg.lineage.fingerprint`
(automatic probes), :mod:`~mlreg.lineage.seeding`, :mod:`~mlreg.lineage.datasets` (snapshot
identity), :mod:`~mlreg.lineage.versions` (next version, clash with main),
:mod:`~mlreg.lineage.writer` (validate then write once), :mod:`~mlreg.lineage.command`
(``mlreg capture -- COMMAND``), :mod:`~mlreg.lineage.verify` and
:mod:`~mlreg.lineage.compare` (``mlreg verify`` / ``mlreg reproduce``).
"""

from mlreg.lineage.compare import Comparison, Difference, compare_state, current_state
from mlreg.lineage.datasets import identify_dataset
from mlreg.lineage.fingerprint import Fingerprint, take_fingerprint
from mlreg.lineage.run import Run, capture
from mlreg.lineage.seeding import seed_everything
from mlreg.lineage.verify import VerifyReport, verify_record
from mlreg.lineage.versions import next_version, plan_version

__all__ = [
    "capture",
    "Run",
    "seed_everything",
    "identify_dataset",
    "take_fingerprint",
    "Fingerprint",
    "plan_version",
    "next_version",
    "verify_record",
    "VerifyReport",
    "current_state",
    "compare_state",
    "Comparison",
    "Difference",
]
