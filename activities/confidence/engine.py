"""Confidence: a documented formula over classification, data coverage and generation validation.

    score = classification_confidence * coverage * generation
    coverage   = cells with ledger data / cells the plan needed (an entity-month is a cell); 1.0 with no cells
    generation = 1.0 when the answer was validated, 0.9 when a model answer was discarded for the template
    outcome    = answered (score ≥ 0.8) · qualified (0.5 ≤ score < 0.8) · clarification_required (< 0.5)

Missing data caps the outcome at `qualified`: a total with a missing component is not an answer to put in a
board pack, however sure Docket is of the rest. So does a configured model that failed (its wording was replaced
by the template narrative): the figures stand, the outcome says something went wrong. The formula and its bands
are documented in docs/confidence.md.
"""

from __future__ import annotations

from docket.contracts import Confidence, Intent, Outcome, ScoreInput, ScoreResult

ANSWER_AT = 0.8
QUALIFY_AT = 0.5
MISSING_CAP = 0.79


def score(data: ScoreInput) -> ScoreResult:
    cls = data.classification.confidence
    coverage = 1.0 if data.expected_cells == 0 else max(0.0, 1 - len(data.missing) / data.expected_cells)
    generation = 1.0 if data.generation_validated else 0.9
    value = cls * coverage * generation
    notes: list[str] = []
    if data.missing and value > MISSING_CAP:
        value = MISSING_CAP
        notes.append("capped at qualified: part of the data is missing")
    if not data.generation_validated and value > MISSING_CAP:
        # A configured model failed (unavailable, rejected the request, or its output was rejected): the figures
        # stand, but the asker should know the wording is the fallback's, so the answer is qualified.
        value = MISSING_CAP
        notes.append("capped at qualified: the model's wording was not used")
    if data.classification.intent == Intent.DOCUMENT_QUESTION and data.passages == 0:
        value = min(value, QUALIFY_AT - 0.01)
        notes.append("no document the asker may see matched")
    if data.expected_cells and data.facts == 0:
        value = min(value, QUALIFY_AT - 0.01)
        notes.append("no figure could be computed")
    value = round(value, 4)
    band = "high" if value >= ANSWER_AT else "medium" if value >= QUALIFY_AT else "low"
    outcome = (
        Outcome.ANSWERED
        if value >= ANSWER_AT
        else Outcome.QUALIFIED
        if value >= QUALIFY_AT
        else Outcome.CLARIFICATION_REQUIRED
    )
    return ScoreResult(
        confidence=Confidence(
            score=value,
            band=band,
            components={
                "classification": round(cls, 4),
                "coverage": round(coverage, 4),
                "generation": generation,
            },
        ),
        outcome=outcome,
        notes=notes,
    )
