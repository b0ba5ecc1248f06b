"""Online gates of a promotion: when a canary becomes stable, gather its online results.

Offline metrics can lie, so a policy's ``online:`` rules hold a canary back: a promotion that
makes a service's canary version its stable version (canary -> stable) is judged on that
version's online results on that service, by :func:`mlreg.history.online.check_online`, next to
every other gate (:func:`mlreg.gates.evaluate.evaluate`, argument ``online``).

Which promotions: the promotion names a service, is not itself a canary (no canary share), and
at the *base* revision (the rules in force; in ``mlreg gate --candidate`` the one registry) that
service's canary is the candidate version of the same model. Every other promotion (a new
canary, a stable that never ran as canary, a rollback of a canary, a bootstrap) is unaffected.

Where the results come from: the *head* revision. Online results are append-only facts
(``models/<model>/online/<experiment>.yaml``, schema ``mlreg/online/v1``); the PR that promotes
a canary may add the result it is promoted on, and reviewers see that file in the same PR (the PR
gate refuses edits that rewrite an existing result). Only valid files count: a file that does not
validate, or whose model/experiment does not match its path, is left out and named in the
result's notes (the PR gate already refuses a head with an invalid file). The rules themselves
come from the base revision's policy, like every other gate: a PR cannot weaken them.

Fail closed: rules but no usable result fail with "no online result for MODEL@V on SERVICE".
"""

from __future__ import annotations

from typing import Any

from mlreg.errors import MlregError
from mlreg.gates.inputs import OnlineEvidence, Promotion

__all__ = ["canary_to_stable", "read_online_results", "online_evidence"]


def canary_to_stable(base: Any, promotion: Promotion) -> bool:
    """Whether ``promotion`` makes the version that is the canary of its service at ``base``
    that service's stable version."""
    if promotion.service is None or promotion.canary_percent is not None:
        return False
    try:
        dep = base.deployments().get(promotion.service)
    except (MlregError, AttributeError):
        return False
    return (dep is not None and dep.canary is not None and dep.canary == promotion.to_version
            and dep.model == promotion.model)


def read_online_results(registry: Any, model: str) -> tuple[list[dict], list[str]]:
    """(results, skipped): the valid online results of ``model`` in ``registry`` (each with
    ``path``), and ``"PATH: why"`` for each file left out."""
    results: list[dict] = []
    skipped: list[str] = []
    prefix = f"models/{model}/online/"
    for f in registry.files():
        if not f.startswith(prefix) or not f.endswith(".yaml") or "/" in f[len(prefix):]:
            continue
        try:
            doc = dict(registry.load(f, "online").data)
        except MlregError as exc:
            skipped.append(f"{f}: invalid ({exc})")
            continue
        experiment = f[len(prefix):-len(".yaml")]
        if doc.get("model") != model or doc.get("experiment") != experiment:
            skipped.append(f"{f}: says model {doc.get('model')!r} experiment "
                           f"{doc.get('experiment')!r}, not its path")
            continue
        doc["path"] = f
        results.append(doc)
    return results, skipped


def online_evidence(head: Any, base: Any, promotion: Promotion) -> OnlineEvidence | None:
    """The online evidence of a canary -> stable promotion (results read from ``head``), or
    None for any other promotion."""
    if not canary_to_stable(base, promotion):
        return None
    assert promotion.service is not None
    results, skipped = read_online_results(head, promotion.model)
    return OnlineEvidence(promotion.service, tuple(results), tuple(skipped))
