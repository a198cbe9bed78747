"""classify_request: rules over the tenant catalog (layer 1; the trained model and LLM layers come later)."""

from __future__ import annotations

from sqlalchemy import Engine
from temporalio import activity

from activities import names
from activities.classify.rules import RuleClassifier
from activities.errors import run_engine
from docket.catalog import load_catalog
from docket.contracts import ClassifyInput, ClassifyResult
from docket.errors import CatalogEmptyError


class ClassifyActivities:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _classify(self, data: ClassifyInput) -> ClassifyResult:
        catalog = load_catalog(self.engine, data.tenant)
        if not catalog.entities or not catalog.accounts:
            raise CatalogEmptyError(
                f"tenant {data.tenant!r} has no entities or accounts loaded",
                hint="load a ledger with `docket ingest ledger PATH`",
            )
        return RuleClassifier(catalog).classify(data.question, data.as_of)

    @activity.defn(name=names.CLASSIFY)
    async def classify_request(self, data: ClassifyInput) -> ClassifyResult:
        """Classify a question: intent, complexity, slots, confidence."""
        return await run_engine(self._classify, data)
