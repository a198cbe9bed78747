"""Confidence: a documented formula over classification, method, data coverage, retrieval and generation.

    score = classification * method * coverage * computed * retrieval * generation * assumptions

docs/confidence.md defines every factor, the caps and the bands, and reports the reliability table the constants
were checked against (`docket eval confidence`).
"""

from __future__ import annotations

from typing import Literal

from docket.contracts import Confidence, Intent, Outcome, ScoreInput, ScoreResult

ANSWER_AT = 0.8
QUALIFY_AT = 0.5
MISSING_CAP = 0.79
# How far each way of understanding a question is trusted beyond its own confidence: the rules and the trained
# model report calibrated-enough probabilities (docs/classifier.md); an LLM reading is one more model's opinion;
# the fallback is a guess. A reading a person confirmed is certain whatever produced it.
METHOD = {"rule": 1.0, "ml": 1.0, "llm": 0.95, "fallback": 0.85}
# A figure the plan asked for that could not be computed (an operand without data, a zero denominator).
UNAVAILABLE = 0.85
# A variance explained only by the ledger's contributors, with no document (close commentary) about it.
UNEXPLAINED_VARIANCE = 0.95
# Each choice the planner made that the question left open (a default basis or trend window).
ASSUMPTION = 0.97


def score(data: ScoreInput) -> ScoreResult:
    c = data.classification
    cls = c.confidence
    method = 1.0 if cls >= 1.0 else METHOD.get(c.method, 1.0)
    # Part of the data still gives an answer (capped at qualified below, the gaps named); none at all gives no
    # figure, which asks for clarification: so coverage scales the score between 0.5 and 1.
    present = 1.0 if data.expected_cells == 0 else max(0.0, 1 - len(data.missing) / data.expected_cells)
    coverage = 0.5 + 0.5 * present
    computed = UNAVAILABLE if data.unavailable else 1.0
    retrieval = UNEXPLAINED_VARIANCE if data.template == "variance" and data.passages == 0 else 1.0
    generation = 1.0 if data.generation_validated else 0.9
    assumptions = ASSUMPTION**data.assumptions
    value = cls * method * coverage * computed * retrieval * generation * assumptions
    notes: list[str] = []
    if data.missing and value > MISSING_CAP:
        value = MISSING_CAP
        notes.append("capped at qualified: part of the data is missing")
    if data.unavailable and value > MISSING_CAP:
        value = MISSING_CAP
        notes.append("capped at qualified: a figure the question needs could not be computed")
    if not data.generation_validated and value > MISSING_CAP:
        # A configured model failed (unavailable, rejected the request, or its output was rejected): the figures
        # stand, but the asker should know the wording is the fallback's, so the answer is qualified.
        value = MISSING_CAP
        notes.append("capped at qualified: the model's wording was not used")
    if c.intent == Intent.DOCUMENT_QUESTION and data.passages == 0:
        value = min(value, QUALIFY_AT - 0.01)
        notes.append("no document the asker may see matched")
    if data.expected_cells and data.facts == 0:
        value = min(value, QUALIFY_AT - 0.01)
        notes.append("no figure could be computed")
    value = round(value, 4)
    band: Literal["high", "medium", "low"] = (
        "high" if value >= ANSWER_AT else "medium" if value >= QUALIFY_AT else "low"
    )
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
                "method": method,
                "coverage": round(coverage, 4),
                "computed": computed,
                "retrieval": retrieval,
                "generation": generation,
                "assumptions": round(assumptions, 4),
            },
        ),
        outcome=outcome,
        notes=notes,
    )
