"""Confidence score: bands, the missing-data cap, and the floors for empty results."""

from __future__ import annotations

import pytest

from activities.confidence.engine import score
from docket.contracts import (
    ClassifyResult,
    Complexity,
    Intent,
    MissingData,
    Outcome,
    ScoreInput,
    Slots,
)


def cls(confidence: float, intent: Intent = Intent.METRIC_LOOKUP) -> ClassifyResult:
    return ClassifyResult(intent=intent, complexity=Complexity.SIMPLE, confidence=confidence, slots=Slots())


def scored(
    confidence: float,
    *,
    expected_cells: int = 1,
    missing: int = 0,
    facts: int = 1,
    validated: bool = True,
    passages: int = 0,
    intent: Intent = Intent.METRIC_LOOKUP,
) -> tuple[float, str, Outcome]:
    result = score(
        ScoreInput(
            classification=cls(confidence, intent),
            expected_cells=expected_cells,
            missing=[MissingData(entity="MER-BR", period=f"2026-{10 - i:02d}") for i in range(missing)],
            facts=facts,
            generation_validated=validated,
            passages=passages,
        )
    )
    return result.confidence.score, result.confidence.band, result.outcome


@pytest.mark.parametrize(
    ("confidence", "band", "outcome"),
    [
        (0.97, "high", Outcome.ANSWERED),
        (0.8, "high", Outcome.ANSWERED),
        (0.7999, "medium", Outcome.QUALIFIED),
        (0.65, "medium", Outcome.QUALIFIED),
        (0.5, "medium", Outcome.QUALIFIED),
        (0.4999, "low", Outcome.CLARIFICATION_REQUIRED),
        (0.3, "low", Outcome.CLARIFICATION_REQUIRED),
    ],
)
def test_bands(confidence: float, band: str, outcome: Outcome) -> None:
    value, got_band, got_outcome = scored(confidence)
    assert value == pytest.approx(confidence)
    assert (got_band, got_outcome) == (band, outcome)


def test_components_are_reported() -> None:
    result = score(ScoreInput(classification=cls(0.96), expected_cells=4, missing=[], facts=4))
    assert result.confidence.components == {
        "classification": 0.96,
        "method": 1.0,
        "coverage": 1.0,
        "computed": 1.0,
        "retrieval": 1.0,
        "generation": 1.0,
        "assumptions": 1.0,
    }


def test_missing_data_caps_at_qualified() -> None:
    # 1 of 10 cells missing would still score 0.873 (answered) without the cap.
    value, band, outcome = scored(0.97, expected_cells=10, missing=1)
    assert outcome == Outcome.QUALIFIED
    assert band == "medium"
    assert 0.5 <= value < 0.8


def test_missing_data_cap_is_explained() -> None:
    result = score(
        ScoreInput(
            classification=cls(0.97),
            expected_cells=10,
            missing=[MissingData(entity="MER-BR", period="2026-10")],
            facts=1,
        )
    )
    assert result.notes
    assert "missing" in result.notes[0]
    assert result.confidence.components["coverage"] == pytest.approx(0.5 + 0.5 * 0.9)


def test_mostly_missing_data_is_still_a_qualified_answer() -> None:
    # A figure over 1 of 3 months is an answer with its gaps named, not a question back.
    score_, band, outcome = scored(0.97, expected_cells=3, missing=2)
    assert outcome == Outcome.QUALIFIED and band == "medium"
    assert score_ == pytest.approx(0.97 * (0.5 + 0.5 / 3), abs=1e-4)


def test_method_assumptions_and_uncomputable_figures_lower_the_score() -> None:
    base = score(ScoreInput(classification=cls(0.97), expected_cells=1, facts=1))
    llm = score(ScoreInput(classification=cls(0.97).model_copy(update={"method": "llm"}), expected_cells=1, facts=1))
    assumed = score(ScoreInput(classification=cls(0.97), expected_cells=1, facts=1, assumptions=2))
    unavailable = score(ScoreInput(classification=cls(0.97), expected_cells=1, facts=1, unavailable=1))
    assert llm.confidence.score == pytest.approx(0.97 * 0.95)
    assert assumed.confidence.score == pytest.approx(0.97 * 0.97**2, abs=1e-4)
    assert assumed.outcome == Outcome.ANSWERED
    assert unavailable.outcome == Outcome.QUALIFIED and "could not be computed" in unavailable.notes[0]
    assert base.confidence.components["method"] == 1.0


def test_a_confirmed_reading_is_trusted_whatever_decided_it() -> None:
    confirmed = cls(1.0).model_copy(update={"method": "llm"})
    assert score(ScoreInput(classification=confirmed, expected_cells=1, facts=1)).confidence.score == 1.0


def test_unexplained_variance_is_still_answered() -> None:
    result = score(ScoreInput(classification=cls(0.97), expected_cells=2, facts=3, template="variance", passages=0))
    assert result.confidence.components["retrieval"] == 0.95 and result.outcome == Outcome.ANSWERED


def test_no_figure_computed_asks_for_clarification() -> None:
    _, _, outcome = scored(0.97, expected_cells=1, missing=1, facts=0)
    assert outcome == Outcome.CLARIFICATION_REQUIRED


def test_a_failed_model_caps_the_answer_at_qualified() -> None:
    valid, _, answered = scored(0.97)
    invalid, band, outcome = scored(0.97, validated=False)
    assert answered == Outcome.ANSWERED
    # The product would be 0.873 (still "answered"); the cap makes the fallback wording visible as qualified.
    assert valid * 0.9 > 0.8 and invalid == 0.79
    assert (band, outcome) == ("medium", Outcome.QUALIFIED)
    # Below the cap, the 0.9 factor still applies.
    assert scored(0.6, validated=False)[0] == pytest.approx(0.54)


def test_document_question_without_passages_asks_for_clarification() -> None:
    _, band, outcome = scored(0.97, expected_cells=0, facts=0, passages=0, intent=Intent.DOCUMENT_QUESTION)
    assert outcome == Outcome.CLARIFICATION_REQUIRED
    assert band == "low"


def test_document_question_with_passages_is_answered() -> None:
    _, _, outcome = scored(0.97, expected_cells=0, facts=0, passages=2, intent=Intent.DOCUMENT_QUESTION)
    assert outcome == Outcome.ANSWERED
