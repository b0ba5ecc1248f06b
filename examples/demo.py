"""`make demo`: the whole story, locally, with no network and no credentials.

1. The example registry at the top of this repository: validate it, list it, gate the seed's
   fraud@127 (passes) and fraud@128 (fails, failing slices first).
2. A scratch registry in a temporary directory, a git repository with a bare ``origin``, worked
   the way a team works on GitHub, except that pull requests are branches merged by git:
   two candidates trained for real (scikit-learn on seeded synthetic data) and captured with the
   capture API, each change gated over its base and head revisions; a bootstrap, a 10% canary
   whose gate passes and is merged, a promotion whose gate fails on one country's slice, a
   rollback of the canary, and ``mlreg deployed`` at the end.

Set MLREG_DEMO_KEEP=1 to keep the scratch directory and look around.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MLREG = [sys.executable, "-m", "mlreg"]

# Commits made by the demo do not depend on (or touch) the machine's git configuration.
os.environ.update({
    "GIT_AUTHOR_NAME": "Demo Trainer", "GIT_AUTHOR_EMAIL": "trainer@example.com",
    "GIT_COMMITTER_NAME": "Demo Trainer", "GIT_COMMITTER_EMAIL": "trainer@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
})
for var in ("MLREG_REGISTRY", "GITHUB_STEP_SUMMARY", "GITHUB_TOKEN", "GITHUB_ACTIONS"):
    os.environ.pop(var, None)


def banner(text: str) -> None:
    print(f"\n{'=' * 100}\n{text}\n{'=' * 100}", flush=True)


def step(title: str, *args: str, ok_codes: tuple[int, ...] = (0,), cwd: str = ROOT) -> int:
    print(f"\n$ mlreg {' '.join(args)}    # {title}", flush=True)
    rc = subprocess.call([*MLREG, *args], cwd=cwd)
    if rc not in ok_codes:
        print(f"demo: 'mlreg {' '.join(args)}' exited {rc}", file=sys.stderr)
        sys.exit(rc or 1)
    return rc


def git(repo: str, *args: str, show: bool = False) -> str:
    if show:
        print(f"$ git {' '.join(args)}", flush=True)
    proc = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"demo: git {' '.join(args)} failed: {proc.stderr}", file=sys.stderr)
        sys.exit(1)
    return proc.stdout.strip()


# -- part 1: the example registry ------------------------------------------------------------------

def example_registry() -> None:
    banner("Part 1: the example registry in this repository")
    step("validate the example registry", "validate")
    step("models and versions", "list")
    step("what serves each service", "deployed")
    step("one lineage record, by service name", "show", "fraud-scoring")
    step("gate fraud@127 against what fraud-scoring serves (passes)",
         "gate", "--candidate", "fraud@127", "--service", "fraud-scoring")
    step("gate fraud@128, which violates the policy (fails: exit 1, failing slices first)",
         "gate", "--candidate", "fraud@128", "--service", "fraud-scoring", ok_codes=(1,))


# -- part 2: a scratch registry and the pull-request flow -----------------------------------------

COUNTRIES = ["US", "GB", "DE", "BR"]
DEVICES = ["ios", "android", "web"]

MODEL_YAML = """\
schema: mlreg/model/v1
name: churn
owner: growth-ml@example.com
reviewers:
- '@acme/growth-ml'
task: binary_classification
description: Subscription churn in the next 30 days (synthetic demo data).
label_column: label
id_column: customer_id
slice_columns:
- country
- device
"""

CHURN_POLICY = """\
schema: mlreg/policy/v1
description: >-
  Churn extends the default gates: no country may lose more than 0.01 AUC against the version
  served, and calibration is judged on the whole traffic (the demo's slices are small).
remove: [calibration]
gates:
  - id: country-auc
    description: No country loses more than 0.01 AUC against the served version.
    metric: auc
    slices: {column: country}
    change: {min_absolute: -0.01}
  - id: calibration-overall
    metric: calibration_slope
    slices: overall
    target: {value: 1.0, tolerance: 0.1}
"""


def write_lake(lake: str) -> dict[str, str]:
    """Seeded synthetic snapshots. Feature x3 predicts churn everywhere, with the opposite sign
    in Brazil: a model that pools x3 across countries gets better overall and worse in BR."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(20240126)
    paths = {}
    for role, n in (("train", 30_000), ("eval", 30_000)):
        country = rng.choice(COUNTRIES, size=n, p=[0.4, 0.25, 0.2, 0.15])
        device = rng.choice(DEVICES, size=n, p=[0.45, 0.4, 0.15])
        x = rng.normal(size=(n, 3))
        sign = np.where(country == "BR", -1.0, 1.0)
        logit = -1.0 + 1.1 * x[:, 0] - 0.8 * x[:, 1] + 1.0 * sign * x[:, 2]
        label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
        frame = pd.DataFrame({"customer_id": np.arange(n) + (0 if role == "train" else 10**6),
                              "country": country, "device": device, "x1": x[:, 0],
                              "x2": x[:, 1], "x3": x[:, 2], "label": label})
        folder = os.path.join(lake, f"churn/{role}/dt=2024-01-20")
        os.makedirs(folder, exist_ok=True)
        paths[role] = os.path.join(folder, "part-0.parquet")
        frame.to_parquet(paths[role], index=False)
    return paths


FEATURES = {
    "1": ("baseline: x1 and x2", lambda f: f[["x1", "x2"]].to_numpy()),
    "2": ("x3 by country: x3 for BR and x3 elsewhere as two features",
          lambda f: _x3_by_country(f)),
    "3": ("x3 pooled across countries (the bug: BR's x3 has the opposite effect)",
          lambda f: f[["x1", "x2", "x3"]].to_numpy()),
}


def _x3_by_country(f):  # noqa: ANN001, ANN202
    import numpy as np

    br = (f["country"] == "BR").to_numpy()
    return np.column_stack([f["x1"], f["x2"], np.where(br, 0.0, f["x3"]),
                            np.where(br, f["x3"], 0.0)])


def train(registry: str, lake: dict[str, str], out: str, version: str) -> str:
    """One real training job under the capture API; returns the record's path."""
    import pickle

    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from mlreg.lineage import capture

    description, features = FEATURES[version]
    folder = os.path.join(out, version)
    os.makedirs(folder, exist_ok=True)
    with capture("churn", registry=registry, version=version,
                 description=f"LogisticRegression, {description}") as run:
        run.seed_everything(7)
        run.log_dataset("train", lake["train"])
        train_frame = pd.read_parquet(lake["train"])
        eval_frame = pd.read_parquet(lake["eval"])
        params = {"C": 1.0, "max_iter": 500, "solver": "lbfgs", "feature_set": version}
        run.log_params(params)
        run.log_features(["x1", "x2", "x3"][: 2 if version == "1" else 3],
                         source="feast://growth/churn_features", version="4")
        model = LogisticRegression(C=1.0, max_iter=500).fit(features(train_frame),
                                                             train_frame["label"])
        run.log_metrics("training", {"auc": roc_auc_score(
            train_frame["label"], model.predict_proba(features(train_frame))[:, 1])})
        model_path = os.path.join(folder, "model.pkl")
        with open(model_path, "wb") as fh:
            pickle.dump(model, fh, protocol=5)
        run.log_artifact(model_path, format="sklearn-pickle", target="server")
        scores = model.predict_proba(features(eval_frame))[:, 1]
        preds = eval_frame[["customer_id", "country", "device", "label"]].assign(score=scores)
        pred_path = os.path.join(folder, "eval_predictions.parquet")
        preds.to_parquet(pred_path, index=False)
        run.log_evaluation(pred_path, lake["eval"], id_column="customer_id",
                           label_column="label", score_column="score")
        run.log_latency(0.4, 1.9, "c6i.2xlarge", load_profile="single-row predict, 1k rps")
    print(f"captured churn@{version} ({description}): models/churn/{version}.yaml, "
          f"eval AUC {roc_auc_score(eval_frame['label'], scores):.4f}", flush=True)
    return run.path or ""


class Scratch:
    def __init__(self, root: str) -> None:
        self.root = root
        self.work = os.path.join(root, "registry")
        self.origin = os.path.join(root, "origin.git")
        self.prs = 0

    def pr_branch(self, branch: str, paths: list[str], message: str) -> None:
        """Commit ``paths`` on a new branch from origin/main and push it: a pull request."""
        git(self.work, "checkout", "-q", "-b", branch, "origin/main")
        git(self.work, "add", *paths)
        git(self.work, "commit", "-q", "-m", message)
        git(self.work, "push", "-q", "origin", branch, show=True)
        git(self.work, "checkout", "-q", "main")

    def gate(self, branch: str, expect: int = 0) -> int:
        return step(f"the gate job of this pull request ({'passes' if expect == 0 else 'fails'})",
                    "gate", "--base", "origin/main", "--head", f"origin/{branch}",
                    "--markdown", os.path.join(self.root, f"{branch.replace('/', '_')}.md"),
                    ok_codes=(expect,), cwd=self.work)

    def merge(self, branch: str) -> str:
        """Squash-merge the PR the way GitHub does for a one-commit PR."""
        self.prs += 1
        git(self.work, "checkout", "-q", "main")
        git(self.work, "pull", "-q", "--ff-only", "origin", "main")
        message = git(self.work, "log", "-1", "--format=%B", f"origin/{branch}")
        subject, _, body = message.partition("\n")
        print(f"# review approved: squash-merge {branch} (PR #{self.prs})")
        git(self.work, "merge", "-q", "--squash", f"origin/{branch}", show=True)
        git(self.work, "commit", "-q", "-m", f"{subject} (#{self.prs})\n{body}")
        git(self.work, "push", "-q", "origin", "main", show=True)
        return git(self.work, "rev-parse", "HEAD")


def scratch_registry(root: str) -> None:
    banner("Part 2: a scratch registry, worked through pull requests (branches merged by git)")
    s = Scratch(root)
    step("a new registry: settings, manifest, default policy, workflows, CODEOWNERS",
         "init", s.work, "--owner", "@acme/ml-platform")
    os.makedirs(os.path.join(s.work, "models", "churn"), exist_ok=True)
    with open(os.path.join(s.work, "models", "churn", "model.yaml"), "w") as fh:
        fh.write(MODEL_YAML)
    with open(os.path.join(s.work, "policies", "churn.yaml"), "w") as fh:
        fh.write(CHURN_POLICY)
    step("who approves what", "codeowners", "-C", s.work)
    git(s.work, "add", "-A")
    git(s.work, "commit", "-q", "-m", "A model registry for churn")
    git(root, "clone", "-q", "--bare", s.work, s.origin)
    git(s.work, "remote", "add", "origin", s.origin)
    git(s.work, "fetch", "-q", "origin")
    git(s.work, "branch", "-q", "--set-upstream-to=origin/main", "main")
    print(f"\nregistry: {s.work}\norigin:   {s.origin} (bare)")

    print("\n# training data: seeded synthetic snapshots (train and eval)", flush=True)
    lake = write_lake(os.path.join(root, "lake"))
    out = os.path.join(root, "out")

    banner("The baseline: churn@1, recorded and deployed as a new service")
    train(s.work, lake, out, "1")
    s.pr_branch("record/churn-1", ["models/churn/1.yaml"], "Record churn@1")
    s.gate("record/churn-1")
    s.merge("record/churn-1")
    step("open the first deployment of churn-scoring (a bootstrap)",
         "promote", "churn-scoring", "churn@1", "--reason", "first churn model", cwd=s.work)
    s.gate("mlreg/promote/churn-scoring-churn-1")
    s.merge("mlreg/promote/churn-scoring-churn-1")

    banner("Two candidates, trained and captured for real")
    train(s.work, lake, out, "2")
    train(s.work, lake, out, "3")
    s.pr_branch("record/churn-2-3", ["models/churn/2.yaml", "models/churn/3.yaml"],
                "Record churn@2 and churn@3")
    s.gate("record/churn-2-3")
    s.merge("record/churn-2-3")

    banner("churn@2 as a 10% canary: the gate passes, the PR is merged")
    step("open the canary promotion", "promote", "churn-scoring", "churn@2", "--canary", "10",
         "--reason", "x3 by country", cwd=s.work)
    s.gate("mlreg/promote/churn-scoring-churn-2-canary10")
    s.merge("mlreg/promote/churn-scoring-churn-2-canary10")
    step("running it again finds the same change (now merged): nothing to do",
         "promote", "churn-scoring", "churn@2", "--canary", "10", cwd=s.work)

    banner("churn@3 as the new stable: better overall, worse in Brazil; the gate fails")
    step("open the promotion", "promote", "churn-scoring", "churn@3", cwd=s.work)
    s.gate("mlreg/promote/churn-scoring-churn-3", expect=1)
    print("# the PR stays open and blocked: the gate job is the required check")

    banner("The canary's p99 latency spikes: roll it back")
    step("revert the commit that put churn@2 on the canary", "rollback", "churn-scoring",
         "--reason", "p99 latency spike on the canary", cwd=s.work)
    branch = git(s.work, "for-each-ref", "--format=%(refname:short)",
                 "refs/heads/mlreg/rollback/")
    s.gate(branch)
    s.merge(branch)

    banner("What serves now, and the history, from git alone")
    step("what serves each service", "deployed", "-C", s.work)
    print("\n$ git log --format='%h %s' -- production.yaml")
    print(git(s.work, "log", "--format=%h %s", "--", "production.yaml"))
    print("\n$ git log -1 --format=%B   # the rollback: git's revert line and the reason")
    print(git(s.work, "log", "-1", "--format=%B"))


def main() -> None:
    t0 = time.monotonic()
    example_registry()
    root = tempfile.mkdtemp(prefix="mlreg-demo-")
    try:
        scratch_registry(root)
    finally:
        if os.environ.get("MLREG_DEMO_KEEP") == "1":
            print(f"\nkept the scratch registry in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(f"\ndemo finished in {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    main()
