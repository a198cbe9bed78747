"""The hybrid classifier: rules → trained model → LLM, each layer only for what the one before could not settle.

- Rules decide when exactly one intent cue matched (or a metric with no analysis cue): deterministic, explained.
- Otherwise the trained model (layer 2) decides intent and complexity when its probability clears a threshold.
- Otherwise the LLM (layer 3) decides, and the request waits for a person to confirm. Without an LLM, or when it
  fails, the result is the most conservative one: complexity EXPERT, needs confirmation (method "fallback").
Slots always come from the rules: they are deterministic and tied to the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol

from activities.classify.model import IntentModel
from activities.classify.rules import CLASSIFIER_VERSION, Extraction, RuleClassifier
from docket.catalog import Catalog
from docket.contracts import ClassifyResult, Complexity, Intent
from docket.errors import ModelUnavailableError


@dataclass(frozen=True)
class Thresholds:
    """Where each layer hands over; documented in docs/classifier.md."""

    rule: float = 0.95  # rules decide alone at or above this
    model: float = 0.80  # the model decides at or above this probability
    confirm: float = 0.80  # a final confidence below this asks a person to confirm


@dataclass(frozen=True)
class LLMVerdict:
    intent: Intent
    complexity: Complexity
    model: str


class LLMLayer(Protocol):
    """Layer 3: returns a verdict, or None when the model could not give a valid one."""

    async def classify(self, question: str, extraction: Extraction) -> LLMVerdict | None: ...


class HybridClassifier:
    def __init__(
        self,
        catalog: Catalog,
        model: IntentModel | None = None,
        llm: LLMLayer | None = None,
        thresholds: Thresholds | None = None,
    ) -> None:
        self.rules = RuleClassifier(catalog)
        self.model = model
        self.llm = llm
        self.thresholds = thresholds or Thresholds()

    async def classify(self, question: str, as_of: date) -> ClassifyResult:
        th = self.thresholds
        ex = self.rules.extract(question, as_of)
        intent, rule_conf, why = self.rules.rule_intent(ex)
        layers: dict[str, float] = {"rule": rule_conf}
        version = CLASSIFIER_VERSION + (f"+{self.model.version}" if self.model else "")

        def done(result: ClassifyResult) -> ClassifyResult:
            result.layer_confidence = layers
            result.classifier_version = version
            result.model_version = self.model.version if self.model else ""
            # Only a complete reading can be confirmed; missing slots are asked for as clarifications instead.
            confirmable = not result.clarifications and result.intent != Intent.OUT_OF_SCOPE
            if confirmable and (result.method in ("llm", "fallback") or result.confidence < th.confirm):
                result.needs_confirmation = True
            return result

        pred = self.model.predict(question) if self.model is not None else None
        if rule_conf >= th.rule:
            ex.explanations.append(why)
            # The intent is the rules'; complexity is learnt better than it is written down, so a confident model
            # sets it (the rules' formula stays the default).
            complexity = pred.complexity if pred is not None and pred.complexity_p >= th.model else None
            return done(self.rules.decide(ex, intent, rule_conf, complexity=complexity))

        if pred is not None:
            layers["ml"] = round(pred.intent_p, 4)
            if pred.intent_p >= th.model:
                ex.explanations.append(
                    f"intent {pred.intent.value} by the trained model (p={pred.intent_p:.2f}); "
                    f"rules were unsure ({why})"
                )
                return done(self.rules.decide(ex, pred.intent, pred.intent_p, "ml", pred.complexity))
            intent = pred.intent  # the best guess so far, kept for the conservative fallback

        if self.llm is not None:
            try:
                verdict = await self.llm.classify(question, ex)
            except ModelUnavailableError as exc:
                # The fallback is already safe (a person confirms it); failing the request would not be.
                ex.explanations.append(f"the language model was unavailable: {exc.message}")
                verdict = None
            if verdict is not None:
                layers["llm"] = 1.0
                ex.explanations.append(f"intent {verdict.intent.value} by the language model {verdict.model}")
                # A language model's reading is never trusted alone: confidence stays below the confirm threshold.
                return done(
                    self.rules.decide(ex, verdict.intent, min(0.75, th.confirm - 0.01), "llm", verdict.complexity)
                )
            ex.explanations.append("the language model gave no valid classification")
        else:
            ex.explanations.append("no language model configured for ambiguous requests")
        ex.explanations.append(f"conservative fallback: {intent.value}, EXPERT, to be confirmed by a person")
        return done(self.rules.decide(ex, intent, 0.5, "fallback", Complexity.EXPERT))
