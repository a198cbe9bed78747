"""The oracle itself is checked against the expected figures the data pack ships with."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.oracle import DEMO_PACK, LedgerOracle, months_between

# Metric words used in example_questions.jsonl fact labels → (account, excluded subtrees), read off accounts.csv.
PLAIN_SUMS: dict[str, tuple[str, list[str]]] = {
    "revenue": ("4", []),
    "cogs": ("5.2", []),
    "professional fees": ("5.7", []),
    "operating costs": ("5", []),
    "operating costs excl. payroll": ("5", ["5.1"]),
}


def period_months(label: str) -> list[str]:
    year, _, part = label.partition("-")
    if part.startswith("Q"):
        q = int(part[1:])
        return months_between(f"{year}-{q * 3 - 2:02d}", f"{year}-{q * 3:02d}")
    return [label]


def example_facts() -> list[tuple[str, float]]:
    lines = (DEMO_PACK / "example_questions.jsonl").read_text(encoding="utf-8").splitlines()
    out: list[tuple[str, float]] = []
    for line in lines:
        example: dict[str, Any] = json.loads(line)
        out.extend(example["expect"].get("facts", {}).items())
    return out


def plain_sum_facts() -> list[tuple[str, float]]:
    out = []
    for label, value in example_facts():
        *metric_words, _entity, _period = label.split(" ")
        if " ".join(metric_words) in PLAIN_SUMS:
            out.append((label, value))
    return out


def test_every_plain_sum_in_the_examples_is_covered() -> None:
    labels = [label for label, _ in plain_sum_facts()]
    # Ten figures in the pack are plain sums; the growth and margin percentages are not.
    assert len(labels) == 10
    assert "revenue group 2026-10" in labels
    assert "operating costs excl. payroll MER-CA 2026-05" in labels
    assert "revenue MER-JP 2025-09" in labels


@pytest.mark.parametrize(("label", "expected"), plain_sum_facts(), ids=[label for label, _ in plain_sum_facts()])
def test_oracle_reproduces_example_figure(oracle: LedgerOracle, label: str, expected: float) -> None:
    *metric_words, entity, period = label.split(" ")
    account, exclude = PLAIN_SUMS[" ".join(metric_words)]
    entities = oracle.entities_of("meridian") if entity == "group" else [entity]
    result = oracle.sum("meridian", entities, account, period_months(period), exclude)
    assert result.total == expected


def test_subtree_follows_the_parent_column(oracle: LedgerOracle) -> None:
    assert oracle.subtree("5.1") == {"5.1", "5.1.1", "5.1.2", "5.1.3", "5.1.4"}
    assert oracle.subtree("4") == {"4", "4.1", "4.2", "4.3"}
    assert len(oracle.subtree("5")) == 15
    assert oracle.subtree("5.7") == {"5.7"}


def test_group_october_has_brazil_missing(oracle: LedgerOracle) -> None:
    result = oracle.sum("meridian", oracle.entities_of("meridian"), "4", ["2026-10"])
    assert result.missing == (("MER-BR", "2026-10"),)
    assert oracle.is_missing("meridian", "MER-BR", "2026-09")
    assert not oracle.is_missing("meridian", "MER-BR", "2026-08")


def test_all_missing_is_no_figure_not_zero(oracle: LedgerOracle) -> None:
    result = oracle.sum("meridian", ["MER-BR"], "4", ["2026-10"])
    assert result.total is None
    assert result.rows == 0
    with pytest.raises(LookupError):
        oracle.total("meridian", ["MER-BR"], "4", ["2026-10"])


def test_masked_total_and_payroll_add_up(oracle: LedgerOracle) -> None:
    months = ["2026-05"]
    payroll = oracle.total("meridian", ["MER-CA"], "5.1", months)
    # The pack names this payroll figure as one carol's answer must never contain.
    assert payroll == 959745
    whole = oracle.total("meridian", ["MER-CA"], "5", months)
    assert whole == oracle.total("meridian", ["MER-CA"], "5", months, exclude=["5.1"]) + payroll


def test_tenants_do_not_mix(oracle: LedgerOracle) -> None:
    assert oracle.entities_of("globex") == ["GLX-UK", "GLX-US"]
    assert oracle.sum("meridian", ["GLX-US"], "4", ["2026-10"]).total is None
    assert oracle.total("globex", ["GLX-US"], "4", ["2026-10"]) > 0


def test_months_between() -> None:
    assert months_between("2025-11", "2026-02") == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert period_months("2026-Q2") == ["2026-04", "2026-05", "2026-06"]
