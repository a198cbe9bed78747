"""score_confidence: confidence and response type."""

from __future__ import annotations

from temporalio import activity

from activities import names
from activities.confidence.engine import score
from docket.contracts import ScoreInput, ScoreResult


class ScoreActivities:
    @activity.defn(name=names.SCORE)
    async def score_confidence(self, data: ScoreInput) -> ScoreResult:
        """Score confidence and choose the response type."""
        return score(data)
