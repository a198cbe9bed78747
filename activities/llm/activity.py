"""generate_answer: word the answer with the configured generator."""

from __future__ import annotations

from temporalio import activity

from activities import names
from activities.errors import to_application_error
from activities.llm.engine import Generator, render_template_answer
from docket.contracts import GenerateInput, GenerateResult
from docket.errors import DocketError, ModelBadRequestError, ModelUnavailableError

# After this many attempts at an unavailable model, answer with the template rather than fail the request.
FALLBACK_AFTER_ATTEMPTS = 3


class GenerateActivities:
    def __init__(self, generator: Generator) -> None:
        self.generator = generator

    @activity.defn(name=names.GENERATE)
    async def generate_answer(self, data: GenerateInput) -> GenerateResult:
        """Word the answer from masked facts and safe context."""
        try:
            return await self.generator.generate(data)
        except ModelUnavailableError as exc:
            if activity.info().attempt < FALLBACK_AFTER_ATTEMPTS:
                raise to_application_error(exc) from exc
            fallback = render_template_answer(data, getattr(self.generator, "pins", None))
            return fallback.model_copy(
                update={
                    "limitations": [f"The model was unavailable ({exc.message}); showing the deterministic narrative."],
                }
            )
        except ModelBadRequestError as exc:
            # A wrong key, unknown model or an oversized prompt will not fix itself on retry; the request still
            # deserves its figures, so answer with the template and say why.
            fallback = render_template_answer(data, getattr(self.generator, "pins", None))
            return fallback.model_copy(
                update={"limitations": [f"The model rejected the request ({exc.message}); showing the narrative."]}
            )
        except DocketError as exc:
            raise to_application_error(exc) from exc
