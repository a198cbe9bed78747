"""score_confidence: confidence and response type."""

from __future__ import annotations

from temporalio import activity

from activities import names
from activities.confidence.engine import score
from activities.trace import annotate
from docket.contracts import ScoreInput, ScoreResult


class ScoreActivities:
    @activity.defn(name=names.SCORE)
    async def score_confidence(self, data: ScoreInput) -> ScoreResult:
        """Score confidence and choose the response type."""
        result = score(data)
        annotate(
            **{
                "docket.confidence": result.confidence.score,
                "docket.confidence_band": result.confidence.band,
                "docket.outcome": result.outcome.value,
            }
        )
        return result
