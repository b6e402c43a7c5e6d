"""The demo's `snakemake --report` page in a real browser (headless Chromium, Debian's `chromium`
package): it loads without script errors, lists every table and figure the run made, shows each
of them, and a screenshot is not blank. Marker `browser`; skipped where no Chromium is installed
(`apt-get install chromium`, which `.ci/run` does in CI)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.browser_helpers import Browser, find_chromium
from tests.workflow_helpers import snakemake

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CLICK_LINK = """(name => {
  const a = Array.from(document.querySelectorAll('a')).find(e => e.textContent.trim() === name);
  if (!a) return false; a.click(); return true; })"""
LISTED = "Array.from(document.querySelectorAll('tbody tr')).map(r => r.cells[0].textContent.trim())"
SHOW = """(file => {
  const row = Array.from(document.querySelectorAll('tbody tr')).find(r => r.cells[0].textContent.trim() === file);
  if (!row) return false; row.querySelector('a[iconname=eye]').click(); return true; })"""
SHOWN = """Array.from(document.querySelectorAll('img, iframe')).filter(e => e.clientWidth > 100)
  .map(e => ({tag: e.tagName, src: e.src, natural: e.naturalWidth || 0, w: e.clientWidth, h: e.clientHeight}))"""


@pytest.fixture(scope="module")
def report(demo_run, tmp_path_factory) -> Path:
    if find_chromium() is None:
        pytest.skip("no chromium executable (apt-get install chromium)")
    pytest.importorskip("pygments")
    path = tmp_path_factory.mktemp("report") / "report.html"
    snakemake(["--report", str(path)], cwd=demo_run)
    return path


def _data_uri_bytes(uri: str) -> bytes:
    return base64.b64decode(uri.split("base64,", 1)[1])


def _open_category(browser: Browser, report: Path, category: str):
    page = browser.open(report.as_uri())
    assert page.evaluate(f"{CLICK_LINK}({category!r})"), f"no {category} entry in the report menu"
    page.settle(0.5)
    return page


def _not_blank(png: bytes) -> None:
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64)
    assert img.shape[0] >= 500 and img.shape[1] >= 1000
    colours = np.unique(img.reshape(-1, 3)[:: 7], axis=0)
    assert img.std() > 20 and len(colours) > 50, (img.std(), len(colours))


def test_report_shows_every_table_and_figure_without_script_errors(report, demo_run, tmp_path):
    results = demo_run / "results/demo"
    # The paper-style table (CSV and HTML) and the demo's verdict (CSV).
    tables = sorted(str(p.relative_to(demo_run)) for p in (results / "tables").iterdir()
                    if p.suffix in (".csv", ".html"))
    assert {Path(t).stem for t in tables} == {"table1", "verdict"}
    figures = sorted(str(p.relative_to(demo_run)) for p in (results / "figures").rglob("*.png"))
    assert len(figures) >= 3  # trajectories, patch grids, condensation losses

    with Browser() as browser:
        home = browser.open(report.as_uri())
        assert home.evaluate("document.title") == "Snakemake Report"
        assert "IDC workflow run demo" in home.evaluate("document.body.innerText")
        _not_blank(home.screenshot(tmp_path / "home.png").read_bytes())

        page = _open_category(browser, report, "Tables")
        assert sorted(page.evaluate(LISTED)) == tables
        html_table = next(t for t in tables if t.endswith(".html"))
        assert page.evaluate(f"{SHOW}({html_table!r})")
        page.settle(1.0)
        (frame,) = [e for e in page.evaluate(SHOWN) if e["tag"] == "IFRAME"]
        shown = _data_uri_bytes(frame["src"]).decode()
        assert shown == (demo_run / html_table).read_text() and "IDC (ours)" in shown
        assert frame["h"] > 100
        _not_blank(page.screenshot(tmp_path / "table.png").read_bytes())

        for figure in figures:
            page = _open_category(browser, report, "Figures")
            assert sorted(page.evaluate(LISTED)) == figures
            assert page.evaluate(f"{SHOW}({figure!r})")
            page.settle(0.5)
            (img,) = [e for e in page.evaluate(SHOWN) if e["tag"] == "IMG"]
            assert img["natural"] > 100, f"{figure} did not decode in the browser"
            assert _data_uri_bytes(img["src"]) == (demo_run / figure).read_bytes()
        shot = page.screenshot(tmp_path / "figure.png").read_bytes()
        _not_blank(shot)

        errors = [e for p in browser.pages for e in p.errors]
        assert errors == [], errors
