"""After deployment: history, as-of queries, lineage diffs, reverse lineage, online results,
audits and the dashboard, all from git.

    from mlreg.history import timeline, serving_at, lineage_diff, load_index, check_online

Design, in short (each module's docstring has the details):

* **Timeline** (:mod:`~mlreg.history.timeline`): the first-parent chain of main is the history as
  it landed. One ``git log --raw -z`` pass, streamed, lists every commit that touched the
  manifest or ``models/``; manifest versions come from one ``git cat-file --batch`` process, a
  batch at a time; each version is read from the previous one's changed region
  (:mod:`~mlreg.history.manifest`). Order is commit order; dates are shown, never sorted on.
  Rollbacks are revert commits (git's ``This reverts commit <sha>.`` line, also found on the
  branch of a merge commit) and their reason is the message's ``Reason:`` line or free text.
* **Reverse lineage** (:mod:`~mlreg.history.index`): record facts are cached in
  ``.git/mlreg/lineage-index.v1.json`` keyed by git blob id. Records are immutable and a blob id
  names content, so the cache never goes stale; blob ids come from ``git ls-tree`` (a revision)
  or git's own index plus ``git hash-object`` for changed files (the working tree).
* **Diff** (:mod:`~mlreg.history.diff`): every differing leaf of two records, list items matched
  by identity, then grouped; pure.
* **Online results** (:mod:`~mlreg.history.online`): append-only ``models/<m>/online/<id>.yaml``
  files (``mlreg/online/v1``) and :func:`check_online`, the pure online gate.
* **Audit** (:mod:`~mlreg.history.audit`) re-derives gate decisions with the gates library at the
  commits that gave a version traffic; **dashboard** (:mod:`~mlreg.history.dashboard`,
  :mod:`~mlreg.history.svg`) writes static HTML with inline SVG charts.

The library never prints. Importing this package imports no numpy or pandas.
"""

from mlreg.history.diff import FieldChange, LineageDiff, lineage_diff
from mlreg.history.index import LineageIndex, Query, load_index, parse_query, reverse_lineage
from mlreg.history.online import build_online, check_online, online_results, write_online
from mlreg.history.timeline import AsOf, Event, Timeline, parse_when, serving_at, timeline

__all__ = [
    "timeline",
    "serving_at",
    "parse_when",
    "Timeline",
    "Event",
    "AsOf",
    "lineage_diff",
    "LineageDiff",
    "FieldChange",
    "load_index",
    "LineageIndex",
    "Query",
    "parse_query",
    "reverse_lineage",
    "build_online",
    "write_online",
    "online_results",
    "check_online",
]
