"""classify_request: the hybrid classifier (rules → trained model → LLM) over the tenant catalog."""

from __future__ import annotations

from sqlalchemy import Engine
from temporalio import activity

from activities import names
from activities.classify.hybrid import HybridClassifier, LLMLayer, Thresholds
from activities.classify.model import IntentModel
from activities.errors import to_application_error
from activities.trace import annotate
from docket.catalog import Catalog, load_catalog
from docket.contracts import ClassifyInput, ClassifyResult
from docket.errors import CatalogEmptyError, DocketError


class ClassifyActivities:
    def __init__(
        self,
        engine: Engine,
        model: IntentModel | None = None,
        llm: LLMLayer | None = None,
        thresholds: Thresholds | None = None,
    ) -> None:
        self.engine = engine
        self.model = model
        self.llm = llm
        self.thresholds = thresholds

    def catalog(self, tenant: str) -> Catalog:
        """The tenant's catalog; a tenant with nothing loaded is an error that names the fix."""
        catalog = load_catalog(self.engine, tenant)
        if not catalog.entities or not catalog.accounts:
            raise CatalogEmptyError(
                f"tenant {tenant!r} has no entities or accounts loaded",
                hint="load a ledger with `docket ingest ledger PATH`",
            )
        return catalog

    async def classify(self, data: ClassifyInput, catalog: Catalog | None = None) -> ClassifyResult:
        """The classification on a catalog already read (understand_request), else the tenant's; raises
        DocketError as it is."""
        hybrid = HybridClassifier(catalog or self.catalog(data.tenant), self.model, self.llm, self.thresholds)
        result = await hybrid.classify(data.question, data.as_of)
        annotate(
            **{
                "docket.intent": result.intent.value,
                "docket.complexity": result.complexity.value,
                "docket.classification_method": result.method,
                "docket.classification_confidence": result.confidence,
                "docket.needs_confirmation": result.needs_confirmation,
            }
        )
        return result

    @activity.defn(name=names.CLASSIFY)
    async def classify_request(self, data: ClassifyInput) -> ClassifyResult:
        """Classify a question: intent, complexity, slots, confidence, and whether a person must confirm."""
        try:
            return await self.classify(data)
        except DocketError as exc:
            raise to_application_error(exc) from exc
