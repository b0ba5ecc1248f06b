"""Write the example registry's online results (models/*/online/*.yaml), from the seed's cases.

    python examples/build_online.py          # writes the files that do not exist yet

* Uber (fraud): v127 ran as a 5% canary on fraud-scoring from 2024-01-26 10:00 and was rolled
  back on 2024-01-27 because of a p99 latency spike: p99 142 ms on the canary hosts.
* Netflix (recsys): one A/B test of v42 against v41 on each surface. Offline replay said v42 is
  better everywhere (precision@10 0.31 vs 0.29, NDCG@20 0.44 vs 0.42); online, CTR and watch
  time rose on the homepage and search but CTR fell 3% on post-play - which is why post-play
  still serves v41 (offline metrics can lie).

Online results are append-only: an existing file is left alone.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from mlreg.errors import RegistryError  # noqa: E402
from mlreg.history.online import build_online, write_online  # noqa: E402

RESULTS = [
    dict(model="fraud", version="127", experiment="canary-2024-01-26", service="fraud-scoring",
         baseline="126", traffic_percent=5, start="2024-01-26T10:00:00Z",
         end="2024-01-27T09:00:00Z", recorded="2024-01-27T09:10:00Z",
         metrics={"p99_latency_ms": 142.0, "p50_latency_ms": 23.5, "fraud_recall_lift": 0.004},
         intervals={"p99_latency_ms": [131.0, 155.0]},
         notes="p99 latency spike on the canary hosts from 2024-01-26 18:00; rolled back."),
    dict(model="recsys", version="42", experiment="ab-2024-03-homepage", service="homepage",
         surface="homepage", baseline="41", traffic_percent=5, start="2024-03-02T00:00:00Z",
         end="2024-03-09T00:00:00Z", recorded="2024-03-09T08:00:00Z",
         metrics={"ctr_lift": 0.012, "watch_time_lift": 0.006},
         intervals={"ctr_lift": [0.004, 0.02], "watch_time_lift": [-0.001, 0.013]}),
    dict(model="recsys", version="42", experiment="ab-2024-03-search", service="search",
         surface="search", baseline="41", traffic_percent=5, start="2024-03-02T00:00:00Z",
         end="2024-03-09T00:00:00Z", recorded="2024-03-09T08:00:00Z",
         metrics={"ctr_lift": 0.004, "watch_time_lift": 0.002},
         intervals={"ctr_lift": [-0.002, 0.01], "watch_time_lift": [-0.004, 0.008]}),
    dict(model="recsys", version="42", experiment="ab-2024-03-post-play", service="post-play",
         surface="post-play", baseline="41", traffic_percent=5, start="2024-03-02T00:00:00Z",
         end="2024-03-09T00:00:00Z", recorded="2024-03-09T08:00:00Z",
         metrics={"ctr_lift": -0.03, "watch_time_lift": -0.011},
         intervals={"ctr_lift": [-0.045, -0.015], "watch_time_lift": [-0.019, -0.003]},
         notes="Offline replay favoured v42 on post-play too; online CTR fell 3%."),
]


def main() -> None:
    root = os.environ.get("MLREG_EXAMPLE_ROOT", str(ROOT))
    for spec in RESULTS:
        doc = build_online(**spec, recorded_by="examples/build_online.py")
        try:
            path = write_online(root, doc)
        except RegistryError:
            print(f"exists, left alone: models/{spec['model']}/online/{spec['experiment']}.yaml")
            continue
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
