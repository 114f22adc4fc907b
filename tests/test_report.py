from __future__ import annotations

import base64
import re

from autoprune.workflow.report.document import Document


def _png(path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [0, 1])
    fig.savefig(path)
    plt.close(fig)
    return path


def test_markdown_and_html_come_from_one_document(tmp_path):
    img = _png(tmp_path / "pareto_size.png")
    doc = (Document(title="t").heading("Report <x>").paragraph("a & b")
           .heading("Table", 2).table(["model", "acc"], [["dense", 93.625], ["uniform|x", 12.5]])
           .table(["n"], [], empty="_Nothing yet._").figure(img))
    md = doc.to_markdown()
    assert md.startswith("# Report <x>\n\na & b\n\n## Table\n\n| model | acc |")
    assert "| dense | 93.62 |" in md and "| uniform|x | 12.50 |" in md
    assert "_Nothing yet._" in md and "![pareto_size](pareto_size.png)" in md
    page = doc.to_html()
    assert "<h1>Report &lt;x&gt;</h1>" in page and "<p>a &amp; b</p>" in page
    assert page.count("<table>") == 1 and "<td>uniform|x</td>" in page  # not re-parsed
    assert "<p>Nothing yet.</p>" in page
    data = re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(data) == img.read_bytes()
    assert "http" not in page  # self-contained


def test_calibration_paragraph_states_the_cap_and_the_dense_runs_spread():
    from autoprune.workflow.report import calibration_paragraph

    cap = {"structural_macs": 600.0, "dense_ms": 2.0, "dense_ms_range": [1.8, 2.9],
           "points": [[200, 0.4], [500, 0.62], [1000, 1.0]]}
    text = calibration_paragraph(cap, 1000.0)
    assert text == ("Latency calibration: the latency budget allows 0.600 of the dense "
                    "structural MACs (a line fitted to 2 uniform cuts, each timed alternately "
                    "with the dense structure: 0.40, 0.62 of dense at 0.20, 0.50 of its MACs); "
                    "the dense structure's runs there: median 2.000 ms, range 1.800–2.900 ms.")
    # a study calibrated before the record kept the runs; a device where latency ignores MACs
    assert calibration_paragraph({"structural_macs": 450.0}, 1000.0) == (
        "Latency calibration: the latency budget allows 0.450 of the dense structural MACs.")
    assert "ratio of dense MACs stands in" in calibration_paragraph(
        {**cap, "structural_macs": None}, 1000.0)
    assert calibration_paragraph(None, 1000.0) is None
