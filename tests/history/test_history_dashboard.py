"""The static dashboard: pages, charts, links, escaping; opened in headless Chromium."""

from __future__ import annotations

import os
import re
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from chromium_cdp import Browser, find_chromium

from mlreg.errors import InputError
from mlreg.history.dashboard import build_dashboard
from testkit import ROOT

ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def site(story, tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "site"
    summary = build_dashboard(story.root, str(out), gates=True)
    return out, summary


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self.ids: set[str] = set()
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for k, v in attrs:
            if k in ("href", "src") and v is not None:
                self.links.append((k, v))
            if k == "id" and v:
                self.ids.add(v)


def _parse(path: Path) -> _Links:
    p = _Links()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def test_pages_and_summary(site):
    out, summary = site
    assert summary.versions == 4 and summary.services == 4 and summary.events == 20
    assert summary.calibration > 0 and summary.gate_results == 4
    for rel in ("index.html", "models.html", "timeline.html", "data.html", "assets/style.css",
                "models/fraud/index.html", "models/fraud/v/126.html", "models/fraud/v/127.html",
                "models/recsys/index.html", "models/recsys/v/42.html",
                "services/fraud-scoring.html", "services/homepage.html",
                "services/post-play.html"):
        assert (out / rel).is_file(), rel


def test_every_link_resolves_and_nothing_leaves_the_site(site):
    out, _ = site
    pages = sorted(out.rglob("*.html"))
    ids = {p: _parse(p).ids for p in pages}
    checked = 0
    for page in pages:
        for attr, link in _parse(page).links:
            assert not re.match(r"^(https?:)?//", link), f"{page}: external {attr} {link}"
            if link.startswith("data:"):
                continue
            target, _, frag = link.partition("#")
            dest = (page.parent / target).resolve() if target else page
            assert dest.is_file(), f"{page.relative_to(out)}: broken link {link}"
            assert str(dest).startswith(str(out.resolve()))
            if frag:
                assert frag in ids[dest], f"{page.relative_to(out)}: no #{frag} in {target}"
            checked += 1
    assert checked > 100


def test_charts_are_svg(site):
    out, _ = site
    service = (out / "services/fraud-scoring.html").read_text()
    assert "versions served" in service and "stroke-dasharray" in service  # canary, dashed
    assert "p99 latency spike" in service
    version = (out / "models/fraud/v/127.html").read_text()
    assert version.count("<svg") >= 7  # reliability per slice, online metrics
    assert "country=US" in version and "126 (parent)" in version
    model = (out / "models/fraud/index.html").read_text()
    assert "validation.auc" in model and "<polyline" in model


def test_netflix_online_next_to_offline_per_surface(site):
    out, _ = site
    page = (out / "models/recsys/index.html").read_text()
    for header in ("offline precision_at_10", "offline ndcg_at_20", "online ctr_lift",
                   "online watch_time_lift"):
        assert header in page
    for surface in ("homepage", "search", "post-play"):
        assert f'href="../../services/{surface}.html">{surface}</a>' in page
    assert "-0.03 [-0.045, -0.015]" in page
    index = (out / "index.html").read_text()
    for surface in ("homepage", "search", "post-play"):
        assert f"<td>{surface}</td>" in index


def test_gate_results_on_version_pages(site):
    out, _ = site
    page = (out / "models/recsys/v/42.html").read_text()
    assert "re-derived at" in page and "ndcg-no-regression" in page
    page = (out / "models/fraud/v/126.html").read_text()
    assert "bootstrap" in page


def test_names_and_texts_are_escaped(fresh_story, tmp_path):
    model = fresh_story.path / "models/fraud/model.yaml"
    model.write_text(model.read_text().replace(
        "description: Card-not-present", "description: <script>alert(1)</script> & Card"))
    rec = fresh_story.path / "models/fraud/127.yaml"
    rec.write_text(rec.read_text().replace("train.py", "<img src=x onerror=alert(1)>"))
    build_dashboard(fresh_story.root, str(tmp_path / "s"), calibration_versions=0)
    for page in (tmp_path / "s").rglob("*.html"):
        text = page.read_text()
        assert "<script" not in text and "<img" not in text, page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Card" in (
        tmp_path / "s/models/fraud/index.html").read_text()


def test_rebuild_in_place_and_refuse_foreign_directory(story, tmp_path):
    out = tmp_path / "site"
    build_dashboard(story.root, str(out), calibration_versions=0)
    (out / "models/fraud/v/stale.html").write_text("old")
    build_dashboard(story.root, str(out), calibration_versions=0)
    assert not (out / "models/fraud/v/stale.html").exists()
    other = tmp_path / "docs"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        build_dashboard(story.root, str(other))
    assert (other / "keep.txt").read_text() == "mine"


def test_dashboard_cli(story, run_cli, tmp_path):
    res = run_cli("dashboard", "--out", str(tmp_path / "d"), "--calibration", "0", "-C",
                  story.root)
    assert res.code == 0, res
    assert "wrote" in res.out and (tmp_path / "d/index.html").is_file()


# --------------------------------------------------------------------- headless Chromium
CHROMIUM = find_chromium()


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install "
                    "chromium; `make test` installs it when it can): the dashboard is not "
                    "opened in a browser")
def test_pages_load_in_chromium_without_errors(site):
    out, _ = site
    pages = ["index.html", "models.html", "timeline.html", "data.html",
             "models/fraud/index.html", "models/fraud/v/127.html", "models/recsys/index.html",
             "models/recsys/v/42.html", "services/fraud-scoring.html", "services/post-play.html"]
    with tempfile.TemporaryDirectory(prefix="mlreg-chromium-") as profile:
        browser = Browser(CHROMIUM, profile)
        try:
            for rel in pages:
                url = (out / rel).resolve().as_uri()
                loaded = browser.open(url)
                assert loaded["problems"] == [], f"{rel}: {loaded['problems']}"
                for req in loaded["requests"]:
                    assert req.startswith(out.resolve().as_uri()) or req.startswith("data:"), \
                        f"{rel} requested {req}"
                rendered = browser.evaluate(
                    "Array.from(document.querySelectorAll('svg.chart')).filter("
                    "s => s.getBoundingClientRect().width > 0 && "
                    "s.querySelectorAll('polyline,path,circle,rect').length > 1).length")
                total = browser.evaluate("document.querySelectorAll('svg').length")
                assert rendered == total, f"{rel}: {rendered} of {total} charts rendered"
                css = browser.evaluate(
                    "getComputedStyle(document.querySelector('header')).backgroundColor")
                assert css == "rgb(36, 41, 47)", f"{rel}: the stylesheet did not apply"
                if rel in ("index.html", "models/fraud/v/127.html", "services/post-play.html"):
                    assert total >= 1, rel
                if rel == "index.html":
                    ARTIFACTS.mkdir(exist_ok=True)
                    browser.screenshot(str(ARTIFACTS / "dashboard-index.png"))
                if rel == "models/fraud/v/127.html":
                    browser.screenshot(str(ARTIFACTS / "dashboard-fraud-127.png"))
        finally:
            browser.close()
    shot = ARTIFACTS / "dashboard-index.png"
    assert shot.is_file() and shot.stat().st_size > 10_000
    assert os.path.getsize(ARTIFACTS / "dashboard-fraud-127.png") > 10_000
