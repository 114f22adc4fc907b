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
