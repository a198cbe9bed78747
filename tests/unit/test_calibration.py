"""The reliability table of the confidence score: bins, ECE, the labelled test split and `docket eval confidence`."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from activities.classify.dataset import DATASET
from activities.confidence.calibrate import (
    BINS,
    DOCS,
    DOCS_BEGIN,
    DOCS_END,
    CalibrationReport,
    bin_index,
    calibrate,
    reliability,
    write_docs_section,
)
from docket.catalog import Catalog


def test_bins_partition_the_unit_interval() -> None:
    assert BINS[0][0] == 0.0
    assert BINS[-1][1] == 1.0
    for (_, upper), (lower, _) in itertools.pairwise(BINS):
        assert upper == lower  # no gap, no overlap
    # Every edge belongs to exactly one bin: the one it opens (and 1.0 to the last, which is closed).
    for k, (lower, upper) in enumerate(BINS):
        assert bin_index(lower) == k
        assert bin_index((lower + upper) / 2) == k
        if k < len(BINS) - 1:
            assert bin_index(upper) == k + 1
    assert bin_index(1.0) == len(BINS) - 1
    for x in (i / 1000 for i in range(1001)):
        lower, upper = BINS[bin_index(x)]
        assert lower <= x < upper or x == upper == 1.0
    for outside in (-0.01, 1.01):
        with pytest.raises(ValueError):
            bin_index(outside)


def test_ece_of_a_perfectly_calibrated_input_is_zero() -> None:
    # In each bin the share of correct requests equals the confidence they were all given.
    points = [(0.25, k < 1) for k in range(4)]  # 1 of 4 right at 0.25
    points += [(0.6, k < 3) for k in range(5)]  # 3 of 5 at 0.6
    points += [(0.85, k < 17) for k in range(20)]  # 17 of 20 at 0.85
    points += [(1.0, True) for _ in range(3)]
    rel = reliability(points)
    assert rel.ece == 0.0
    assert all(b.gap in (0.0, None) for b in rel.bins)
    assert [b.n for b in rel.bins] == [4, 5, 20, 0, 3]
    assert rel.bins[3].accuracy is None  # an empty bin has no accuracy, and does not count in the ECE


def test_ece_of_a_known_input_equals_the_hand_computed_value() -> None:
    points = [
        (0.4, True),  # bin [0, 0.5): confidence 0.4, accuracy 1.0 → gap -0.6
        (0.9, True),  # bin [0.9, 0.95): confidence 0.9, accuracy 0.5 → gap +0.4
        (0.9, False),
        (0.96, True),  # bin [0.95, 1]: confidence 0.97, accuracy 2/3 → gap ≈ +0.3033
        (0.97, True),
        (0.98, False),
    ]
    # ECE = 1/6 * 0.6 + 2/6 * 0.4 + 3/6 * (0.97 - 2/3) = 0.1 + 0.13333 + 0.15167 = 0.385
    rel = reliability(points)
    assert rel.ece == pytest.approx(0.385, abs=1e-4)
    assert rel.bins[0].gap == pytest.approx(-0.6)
    assert rel.bins[4].mean_confidence == pytest.approx(0.97)
    assert rel.accuracy == pytest.approx(4 / 6, abs=1e-4)
    high = next(b for b in rel.bands if b.band == "high")
    assert (high.n, high.accuracy, high.over_confident) == (5, pytest.approx(0.6), True)
    low = next(b for b in rel.bands if b.band == "low")
    assert (low.n, low.over_confident) == (1, False)


def test_reliability_of_no_request_is_empty() -> None:
    rel = reliability([])
    assert (rel.n, rel.ece, rel.accuracy) == (0, 0.0, 0.0)
    assert all(b.n == 0 for b in rel.bins)


def _test_rows() -> int:
    """Counted here from the file, not through the module under test."""
    lines = DATASET.read_text(encoding="utf-8").splitlines()
    return sum(json.loads(line)["split"] == "test" for line in lines if line.strip())


@pytest.fixture(scope="module")
def report(catalog: Catalog) -> CalibrationReport:
    return calibrate(split="test", catalog=catalog)


def test_the_test_split_table_covers_every_test_request(report: CalibrationReport) -> None:
    n = _test_rows()
    assert n > 0
    assert report.n == n
    assert report.overall.n == n
    assert sum(b.n for b in report.overall.bins) == n
    assert sum(b.n for b in report.overall.bands) == n
    assert sum(rel.n for rel in report.by_method.values()) == n
    assert report.readings.n == n - report.asked
    assert {"rule", "ml"} <= set(report.by_method)


def test_high_confidence_is_right_at_least_as_often_as_the_band_says(report: CalibrationReport) -> None:
    """The acceptance check of the calibration: an answered request is right ≥ 80 % of the time."""
    high = next(b for b in report.overall.bands if b.band == "high")
    assert high.n > 0
    assert not high.over_confident
    assert len(report.high_misses) == round(high.n * (1 - (high.accuracy or 0.0)))


def test_report_is_json_and_markdown(report: CalibrationReport) -> None:
    data = json.loads(json.dumps(report.to_dict()))
    assert data["n"] == report.n
    assert len(data["overall"]["bins"]) == len(BINS)
    text = report.render_markdown()
    assert "| [0.95, 1] |" in text
    assert "Expected calibration error" in text


def test_write_docs_section_replaces_only_the_marked_section(report: CalibrationReport, tmp_path: Path) -> None:
    doc = tmp_path / "confidence.md"
    doc.write_text(f"# Title\n\nbefore\n\n{DOCS_BEGIN}\nstale\n{DOCS_END}\n\nafter\n", encoding="utf-8")
    write_docs_section(doc, report)
    text = doc.read_text(encoding="utf-8")
    assert "stale" not in text
    assert text.startswith("# Title\n\nbefore\n\n") and text.endswith("\n\nafter\n")
    assert report.render_markdown() in text
    unmarked = tmp_path / "unmarked.md"
    unmarked.write_text("# no markers\n", encoding="utf-8")
    with pytest.raises(ValueError):
        write_docs_section(unmarked, report)


def test_the_docs_have_the_marked_section() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert "## Reliability (calibration)" in text
    assert text.index(DOCS_BEGIN) < text.index(DOCS_END)


def test_eval_confidence_command(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.classifier import eval_app

    runner = CliRunner()
    shown = runner.invoke(eval_app, ["confidence"])
    assert shown.exit_code == 0, shown.output
    assert "| confidence | requests | mean confidence | accuracy |" in shown.output
    assert f"Split `test`: {_test_rows()} requests" in shown.output
    assert "| [0, 0.5) |" in shown.output and "| [0.95, 1] |" in shown.output

    as_json = runner.invoke(eval_app, ["confidence", "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)["n"] == _test_rows()

    doc = tmp_path / "confidence.md"
    doc.write_text(f"{DOCS_BEGIN}\n{DOCS_END}\n", encoding="utf-8")
    written = runner.invoke(eval_app, ["confidence", "--write-docs", "--docs", str(doc)])
    assert written.exit_code == 0, written.output
    assert "| [0.8, 0.9) |" in doc.read_text(encoding="utf-8")

    wrong = runner.invoke(eval_app, ["confidence", "--split", "dev"])
    assert wrong.exit_code == 2
