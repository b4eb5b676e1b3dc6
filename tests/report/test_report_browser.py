"""report.html in a real browser: headless Chromium (Debian's, driven by playwright; `make browser`
installs it) opens the report of the fake sweep and finds no console error, no failed request, every
image decoded, the ranked tables and both interactive Pareto plots drawn."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_report import make_sweep

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.mark.slow
def test_report_html_in_headless_chromium(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed: run `make browser` (apt-get install chromium).")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements)")
    from embedlab.report.render import generate_report

    files = generate_report(make_sweep(tmp_path), metric="test/scifact/ndcg@10").files
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.on(
            "console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None
        )
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url[:80]}"))
        page.goto(files.html.as_uri(), wait_until="load")
        page.wait_for_selector(".plot .main-svg", timeout=20_000)
        images = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
        tables = page.eval_on_selector_all("table", "ts => ts.map(t => t.querySelectorAll('tr').length)")
        headers = page.eval_on_selector_all("h2", "hs => hs.map(h => h.textContent)")
        count_points = "ps => ps.map(p => p.querySelectorAll('.point').length)"
        plots = page.eval_on_selector_all(".plot .js-plotly-plot", count_points)
        first_rank = page.eval_on_selector("table td", "td => td.textContent")
        browser.close()
    assert errors == []
    assert len(images) == 2 and all(done and width > 0 for done, width in images), images
    assert len(tables) >= 2 and max(tables) >= 7, tables  # the ranked table: a header and 6 cells
    assert first_rank == "1" and any("Recommendation" in h for h in headers), headers
    assert len(plots) == 2 and all(n >= 6 for n in plots), plots  # each front draws every measured cell
