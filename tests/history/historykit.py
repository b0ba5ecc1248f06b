"""Scripted git histories with fixed dates: the seed's Uber and Netflix stories, commit by commit.

``build_story(dest)`` writes a registry whose main branch tells, in order (dates UTC):

====  ================  ======  ====================================================  ========
 #    date              author  change                                                PR
====  ================  ======  ====================================================  ========
 1    2024-01-11 07:00  alice   registry created; fraud@126 registered                #1
 2    2024-01-12 09:00  alice   fraud-scoring deploys fraud@126                       #2
 3    2024-01-25 08:00  bob     fraud@127 registered                                  #3
 4    2024-01-26 10:00  bob     fraud@127 as a 5% canary on fraud-scoring             #4
 5    2024-01-27 09:10  carol   online result of the canary (p99 142 ms)              #5
 6    2024-01-27 09:30  carol   revert of #4, "Reason: p99 latency spike"             #6
 7    2024-02-20 03:30  dave    recsys@41 registered                                  #7
 8    2024-02-21 10:00  dave    homepage, search, post-play deploy recsys@41          #8
 9    2024-03-01 04:00  dave    recsys@42 registered                                  #9
10    2024-03-02 08:00  dave    recsys@42 as a 5% canary on the three surfaces        #10
11    2024-03-09 08:30  erin    A/B results of recsys@42 on the three surfaces        #11
12    2024-03-10 09:00  dave    homepage and search: canary 42 promoted to stable     #12
13    2024-03-10 09:30  erin    post-play: revert of 42's canary, "CTR -3%" (merge)   #13
====  ================  ======  ====================================================  ========

Commit 13 lands through a real merge commit ("Merge pull request #13 from ...") whose branch
commit carries git's revert line and the reason, as GitHub's merge button leaves it. The
artifact store (examples/store) is copied into the working tree, not committed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from testkit import ROOT

AUTHORS = {name: f"{name}@example.com" for name in ("alice", "bob", "carol", "dave", "erin")}


class Repo:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str, env: dict | None = None) -> str:
        return subprocess.run(["git", "-C", str(self.path), *args], check=True,
                              capture_output=True, text=True,
                              env={**os.environ, **(env or {})}).stdout.strip()

    def write(self, rel: str, text: str) -> None:
        p = self.path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    def copy(self, src_rel: str, dest_rel: str | None = None) -> None:
        src = ROOT / src_rel
        dest = self.path / (dest_rel or src_rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dest)

    def env(self, date: str, author: str, committer: str | None = None) -> dict:
        committer = committer or author
        return {"GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": AUTHORS.get(author, "x@x"),
                "GIT_COMMITTER_NAME": committer,
                "GIT_COMMITTER_EMAIL": AUTHORS.get(committer, "x@x"),
                "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}

    def commit(self, message: str, date: str, author: str = "alice",
               committer: str | None = None) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message,
                 env=self.env(date, author, committer))
        return self.git("rev-parse", "HEAD")

    def revert(self, sha: str, subject: str, reason: str, date: str, author: str) -> str:
        """git's own revert, with the message ``mlreg rollback`` writes."""
        self.git("revert", "--no-commit", sha)
        msg = f"{subject}\n\nThis reverts commit {sha}.\n\nReason: {reason}\n"
        self.git("commit", "-q", "-m", msg, env=self.env(date, author))
        return self.git("rev-parse", "HEAD")


def manifest(services: dict[str, dict]) -> str:
    """production.yaml in the canonical layout: one block per service, a blank line between."""
    out = ["schema: mlreg/deployments/v1",
           "# Desired state: what serves each service.", "services:"]
    blocks = []
    for name, s in services.items():
        lines = [f"  {name}:", f"    model: {s['model']}", f"    stable: '{s['stable']}'"]
        if s.get("canary"):
            lines += ["    canary:", f"      version: '{s['canary']}'",
                      f"      percent: {s['percent']}"]
        for key in ("target", "surface"):
            if s.get(key):
                lines.append(f"    {key}: {s[key]}")
        blocks.append("\n".join(lines))
    return "\n".join(out) + "\n" + "\n\n".join(blocks) + ("\n" if blocks else "")


def online_file(repo: Repo, model: str, experiment: str) -> None:
    repo.copy(f"models/{model}/online/{experiment}.yaml")


def build_story(dest: Path) -> dict[str, str]:
    """The registry described in the module docstring; returns the commits by label."""
    r = Repo(dest)
    c: dict[str, str] = {}
    r.write(".gitignore", "examples/store/\n")
    r.copy("examples/store")
    r.copy("mlreg.yaml")
    for policy in ("default", "fraud", "recsys"):
        r.copy(f"policies/{policy}.yaml")
    r.copy("models/fraud/model.yaml")
    r.copy("models/fraud/126.yaml")
    r.write("production.yaml", manifest({}))
    c["register-126"] = r.commit("Create the registry; register fraud@126 (#1)",
                                 "2024-01-11T07:00:00Z", "alice")
    fraud = {"model": "fraud", "stable": "126", "target": "server"}
    r.write("production.yaml", manifest({"fraud-scoring": fraud}))
    c["deploy-126"] = r.commit("Deploy fraud@126 to the new service fraud-scoring (#2)\n\n"
                               "Service: fraud-scoring\nBefore: not deployed\n"
                               "After: fraud@126\nRecord: models/fraud/126.yaml\n",
                               "2024-01-12T09:00:00Z", "alice")
    r.copy("models/fraud/127.yaml")
    c["register-127"] = r.commit("Register fraud@127 (#3)", "2024-01-25T08:00:00Z", "bob")
    r.write("production.yaml", manifest({"fraud-scoring": {**fraud, "canary": "127",
                                                           "percent": 5}}))
    c["canary-127"] = r.commit(
        "Promote fraud@127 to fraud-scoring as a 5% canary (#4)\n\nService: fraud-scoring\n"
        "Before: fraud@126\nAfter: fraud@126 + canary fraud@127 at 5%\n"
        "Record: models/fraud/127.yaml\n\nReason: retrained on 2024-01-10..2024-01-24\n",
        "2024-01-26T10:00:00Z", "bob")
    online_file(r, "fraud", "canary-2024-01-26")
    c["online-127"] = r.commit("Online result of fraud@127's canary (#5)",
                               "2024-01-27T09:10:00Z", "carol")
    c["rollback-127"] = r.revert(
        c["canary-127"], 'Revert "Promote fraud@127 to fraud-scoring as a 5% canary" (#6)',
        "p99 latency spike", "2024-01-27T09:30:00Z", "carol")

    r.copy("models/recsys/model.yaml")
    r.copy("models/recsys/41.yaml")
    c["register-41"] = r.commit("Register recsys@41 (#7)", "2024-02-20T03:30:00Z", "dave")
    surfaces = ("homepage", "search", "post-play")
    rec = {s: {"model": "recsys", "stable": "41", "surface": s} for s in surfaces}
    r.write("production.yaml", manifest({"fraud-scoring": fraud, **rec}))
    c["deploy-41"] = r.commit("Deploy recsys@41 to homepage, search and post-play (#8)",
                              "2024-02-21T10:00:00Z", "dave")
    r.copy("models/recsys/42.yaml")
    c["register-42"] = r.commit("Register recsys@42 (#9)", "2024-03-01T04:00:00Z", "dave")
    canaried = {s: {**rec[s], "canary": "42", "percent": 5} for s in surfaces}
    r.write("production.yaml", manifest({"fraud-scoring": fraud, **canaried}))
    c["canary-42"] = r.commit("Canary recsys@42 at 5% on every surface (#10)",
                              "2024-03-02T08:00:00Z", "dave")
    for s in surfaces:
        online_file(r, "recsys", f"ab-2024-03-{s}")
    c["online-42"] = r.commit("A/B results of recsys@42 on the three surfaces (#11)",
                              "2024-03-09T08:30:00Z", "erin")
    promoted = {**canaried, "homepage": {**rec["homepage"], "stable": "42"},
                "search": {**rec["search"], "stable": "42"}}
    r.write("production.yaml", manifest({"fraud-scoring": fraud, **promoted}))
    c["promote-42"] = r.commit("Promote recsys@42 to stable on homepage and search (#12)",
                               "2024-03-10T09:00:00Z", "dave")
    # Post-play: the canary goes back through a pull request merged with a merge commit.
    r.git("checkout", "-q", "-b", "rollback-post-play")
    final = {**promoted, "post-play": rec["post-play"]}
    r.write("production.yaml", manifest({"fraud-scoring": fraud, **final}))
    r.git("add", "-A")
    r.git("commit", "-q", "-m", f'Revert "Canary recsys@42 at 5% on every surface" for '
          f"post-play\n\nThis reverts commit {c['canary-42']}.\n\nReason: CTR -3% on "
          "post-play in ab-2024-03-post-play\n", env=r.env("2024-03-10T09:20:00Z", "erin"))
    c["rollback-42-branch"] = r.git("rev-parse", "HEAD")
    r.git("checkout", "-q", "main")
    r.git("merge", "-q", "--no-ff", "rollback-post-play", "-m",
          "Merge pull request #13 from acme/rollback-post-play\n\nRoll back post-play",
          env=r.env("2024-03-10T09:30:00Z", "erin", "github"))
    c["rollback-42"] = r.git("rev-parse", "HEAD")
    return c
