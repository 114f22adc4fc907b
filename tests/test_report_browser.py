"""report.html in a real browser: headless Chromium (Debian's package; `make test` installs it
through scripts/ensure_chromium.sh) loads the page, runs its script and draws the plots."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from autoprune.search import PruneSearch
from autoprune.search.config import config_from_dict
from autoprune.workflow.finalize import finalize
from autoprune.workflow.report import write_report
from tests.helpers import tiny_raw


def _chromium() -> str:
    path = os.environ.get("AUTOPRUNE_CHROMIUM") or shutil.which("chromium")
    if not path:
        raise FileNotFoundError("Chromium is missing: run scripts/ensure_chromium.sh "
                                "(make test does).")
    return path


def _browse(url: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                           "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
                           *extra, url], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def report(synthetic_idx_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        raw = tiny_raw(synthetic_idx_root,
                       search={"mode": "channel", "prior": "uniform", "trials": 6,
                               "sweep": True, "ladder": 1,
                               "objectives": ["accuracy", "size", "latency"]},
                       budget={"size": 0.6}, finalize={"epochs": 1})
        search = PruneSearch(config_from_dict(raw, "browser"), progress=False).run()
        finalize(search, baselines=False)
        search = PruneSearch.load(search.cfg, progress=False)
        out = write_report(search)
        return root / out / "report.html", search
    finally:
        os.chdir(cwd)


def test_report_loads_without_console_errors_and_draws_every_plot(report):
    page, search = report
    text = page.read_text()
    assert not re.search(r'(src|href)="https?:', text)  # self-contained, works offline
    trial = int(search.results_["trial"].iloc[-1])
    proc = _browse(f"{page.as_uri()}#select={trial}", "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    dom = proc.stdout
    drawn = [int(n) for n in re.findall(r'class="ap-plot"[^>]*data-drawn="(\d+)"', dom)]
    # size, latency and MACs plots; each marks every trial once, plus the front, baselines
    # and finalized points
    assert len(drawn) == 3 and all(n >= len(search.results_) for n in drawn), drawn
    assert dom.count("<svg") >= 3 and dom.count('class="ap-point"') >= 3 * len(search.results_)
    # the click path: the selected trial's policy JSON is shown, exactly as stored
    shown = re.search(r'<pre class="ap-policy" data-trial="(\d+)">trial \d+[^\n]*\n(.*?)</pre>',
                      dom, re.S)
    assert shown and int(shown.group(1)) == trial
    stored = json.loads(search.results_.set_index("trial").loc[trial, "policy"])
    assert json.loads(shown.group(2).replace("&quot;", '"')) == stored
    # the hover path: the tooltip is shown with the trial's numbers and ratios
    tip = re.search(r'<div class="ap-tip" style="display: block;[^"]*">(.*?)</div></div>',
                    dom, re.S)
    assert tip, dom[-3000:]
    row = search.results_.set_index("trial").loc[trial]
    assert f"<td>{trial}" in tip.group(1) and f"{row['size_mib']:.4f} MiB" in tip.group(1)
    assert "keep: " in tip.group(1) and f"{row['latency_ms']:.3f} ms" in tip.group(1)


def test_report_screenshot_shows_the_plot(report, tmp_path):
    """Screenshots of the page with and without its drawing script, the embedded PNGs (which
    share matplotlib's colours) removed from both: the script draws the front's orange and the
    trials' blue."""
    from PIL import Image

    page, _ = report
    text = re.sub(r"<figure>.*?</figure>", "", page.read_text(), flags=re.S)
    start = text.rindex("<script>")
    drawn = tmp_path / "drawn.html"
    drawn.write_text(text)
    bare = tmp_path / "bare.html"
    bare.write_text(text[:start] + text[text.index("</script>", start) + len("</script>"):])

    def count(url: str, name: str) -> tuple[int, int]:
        shot = tmp_path / name
        proc = _browse(url, "--hide-scrollbars", "--window-size=1100,2400",
                       f"--screenshot={shot}")
        assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
        pixels = list(Image.open(shot).convert("RGB").getdata())
        near = lambda ref: sum(sum(abs(a - b) for a, b in zip(c, ref)) < 60  # noqa: E731
                               for c in pixels)
        return near((255, 127, 14)), near((31, 119, 180))

    orange, blue = count(drawn.as_uri(), "drawn.png")
    orange0, blue0 = count(bare.as_uri(), "bare.png")
    assert orange - orange0 > 50 and blue - blue0 > 50, (orange, orange0, blue, blue0)
