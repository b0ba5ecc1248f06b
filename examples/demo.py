"""`make demo`: the main job on the embedded defaults, with no network and no credentials.

Validates the example registry at the top of this repository and shows what serves each
service. Later stages (gates, the promotion story) are added as they land.
"""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MLREG = [sys.executable, "-m", "mlreg"]


def step(title: str, *args: str, ok_codes: tuple[int, ...] = (0,)) -> int:
    print(f"\n$ mlreg {' '.join(args)}    # {title}", flush=True)
    rc = subprocess.call([*MLREG, *args], cwd=ROOT)
    if rc not in ok_codes:
        print(f"demo: 'mlreg {' '.join(args)}' exited {rc}", file=sys.stderr)
        sys.exit(rc)
    return rc


def main() -> None:
    step("validate the example registry", "validate")
    step("models and versions", "list")
    step("what serves each service", "deployed")
    step("one lineage record, by service name", "show", "fraud-scoring")
    step("gate fraud@127 against what fraud-scoring serves (passes)",
         "gate", "--candidate", "fraud@127", "--service", "fraud-scoring")


if __name__ == "__main__":
    main()
