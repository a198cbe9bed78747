"""The deterministic narrative, the grounding check on model answers, and the prompt registry."""

from __future__ import annotations

import hashlib

import pytest

from activities.llm.engine import TEMPLATE_MODEL, period_name, render_template_answer, ungrounded_numbers
from docket.contracts import Fact, GenerateInput, GenerateResult, Intent, MaskedComponent, MissingData, Passage
from prompts import registry
from tests.support.oracle import LedgerOracle, months_between


def fact(label_metric: str, entity: str, period: str, value: int, account: str = "4") -> Fact:
    return Fact(
        label=f"{label_metric} {entity} {period}",
        value=value,
        unit="USD",
        entity=entity,
        account=account,
        period=period,
        source="ledger meridian: test",
    )


def test_single_fact_sentence(oracle: LedgerOracle) -> None:
    value = oracle.total("meridian", ["MER-US"], "4", ["2026-10"])
    result = render_template_answer(
        GenerateInput(
            question="What was revenue for MER-US last month?",
            intent=Intent.METRIC_LOOKUP,
            facts=[fact("revenue", "MER-US", "2026-10", value)],
        )
    )
    assert result.answer == f"Revenue for MER-US in October 2026 was {value:,} USD."
    assert "11,765,834 USD" in result.answer  # the pack's own expected figure, as a person reads it
    assert result.generator == "template"
    assert result.model == TEMPLATE_MODEL
    assert result.validated
    assert result.prompt.id == "narrative"
    assert ungrounded_numbers(result.answer, [fact("revenue", "MER-US", "2026-10", value)]) == []


def test_abbreviations_keep_their_capitals(oracle: LedgerOracle) -> None:
    value = oracle.total("meridian", ["MER-DE"], "5.2", ["2026-03"])
    answer = render_template_answer(
        GenerateInput(
            question="q", intent=Intent.METRIC_LOOKUP, facts=[fact("cogs", "MER-DE", "2026-03", value, "5.2")]
        )
    ).answer
    assert answer == f"COGS for MER-DE in March 2026 was {value:,} USD."


def test_comparison_names_highest_lowest_and_total(oracle: LedgerOracle) -> None:
    q2 = months_between("2026-04", "2026-06")
    values = {e: oracle.total("meridian", [e], "4", q2) for e in ["MER-UK", "MER-DE", "MER-FR"]}
    facts = [fact("revenue", e, "2026-Q2", v) for e, v in values.items()]
    answer = render_template_answer(GenerateInput(question="q", intent=Intent.COMPARISON, facts=facts)).answer
    ranked = sorted(values, key=lambda e: -values[e])
    assert answer.startswith("Revenue in Q2 2026: ")
    assert "; ".join(f"{e} {values[e]:,} USD" for e in ranked) in answer
    assert f"{ranked[0]} is highest and {ranked[-1]} lowest" in answer


def test_comparison_narrative_states_only_facts(oracle: LedgerOracle) -> None:
    q2 = months_between("2026-04", "2026-06")
    facts = [
        fact("revenue", e, "2026-Q2", oracle.total("meridian", [e], "4", q2)) for e in ["MER-UK", "MER-DE", "MER-FR"]
    ]
    answer = render_template_answer(GenerateInput(question="q", intent=Intent.COMPARISON, facts=facts)).answer
    assert ungrounded_numbers(answer, facts) == []


def test_group_total_lists_missing_cells(oracle: LedgerOracle) -> None:
    expected = oracle.sum("meridian", oracle.entities_of("meridian"), "4", ["2026-10"])
    assert expected.total is not None
    answer = render_template_answer(
        GenerateInput(
            question="q",
            intent=Intent.METRIC_LOOKUP,
            facts=[fact("revenue", "group", "2026-10", expected.total)],
            missing=[MissingData(entity=e, period=m) for e, m in expected.missing],
        )
    ).answer
    assert answer.startswith(f"Revenue for the group in October 2026 was {expected.total:,} USD.")
    assert "MER-BR 2026-10" in answer
    assert "only the data that was submitted" in answer


def test_masked_reason_is_included_and_no_payroll_figure(oracle: LedgerOracle) -> None:
    months = ["2026-05"]
    value = oracle.total("meridian", ["MER-CA"], "5", months, exclude=["5.1"])
    payroll = oracle.total("meridian", ["MER-CA"], "5.1", months)
    reason = "Payroll (5.1) is left out of the total: POL-001 restricts payroll for your role."
    answer = render_template_answer(
        GenerateInput(
            question="q",
            intent=Intent.METRIC_LOOKUP,
            facts=[fact("operating costs excl. payroll", "MER-CA", "2026-05", value, "5")],
            masked=[MaskedComponent(account="5.1", label="Payroll", policy="POL-008", reason=reason)],
        )
    ).answer
    assert answer.startswith(f"Operating costs excl. payroll for MER-CA in May 2026 was {value:,} USD.")
    assert reason in answer
    assert str(payroll) not in answer
    assert f"{payroll:,}" not in answer


def test_no_facts_says_so() -> None:
    answer = render_template_answer(
        GenerateInput(
            question="q",
            intent=Intent.METRIC_LOOKUP,
            missing=[MissingData(entity="MER-BR", period="2026-10")],
        )
    ).answer
    assert answer.startswith("No figures could be computed")
    assert "MER-BR 2026-10" in answer


def test_passages_are_quoted_with_their_document() -> None:
    passage = Passage(
        doc_id="doc-br-late", title="t", chunk_id="doc-br-late#0", snippet="MER-BR has not submitted.", score=1.0
    )
    answer = render_template_answer(
        GenerateInput(question="q", intent=Intent.DOCUMENT_QUESTION, passages=[passage])
    ).answer
    assert '"MER-BR has not submitted." [doc-br-late]' in answer


@pytest.mark.parametrize(
    ("label", "name"),
    [
        ("2026-10", "October 2026"),
        ("2026-01", "January 2026"),
        ("2026-Q2", "Q2 2026"),
        ("2026-H1", "H1 2026"),
        ("2026-YTD", "YTD 2026"),
        ("2025", "2025"),
    ],
)
def test_period_names(label: str, name: str) -> None:
    assert period_name(label) == name


# ----------------------------------------------------------------- grounding


FACTS = [fact("revenue", "MER-US", "2026-10", 11765834)]


@pytest.mark.parametrize(
    "answer",
    [
        "Revenue for MER-US in October 2026 was 11,765,834 USD.",
        "Revenue was 11765834 USD in 2026-10.",
        "Across 3 entities and 12 months in 2025 and 2026, revenue was 11,765,834.",
        "Revenue for MER-US in Q2 was 11,765,834 USD, reported on day 31.",
    ],
)
def test_grounded_answers_pass(answer: str) -> None:
    assert ungrounded_numbers(answer, FACTS) == []


@pytest.mark.parametrize(
    ("answer", "bad"),
    [
        ("Revenue was 12,000,000 USD.", ["12,000,000"]),
        ("Revenue was 11.8 million USD.", ["11.8"]),
        ("Revenue was 11,765,834 USD, up 16.5% on last year.", ["16.5"]),
        ("Revenue was 11,765,835 USD.", ["11,765,835"]),
        ("Payroll was 959745.", ["959745"]),
        ("About 45 people were hired.", ["45"]),
    ],
)
def test_invented_numbers_are_flagged(answer: str, bad: list[str]) -> None:
    assert ungrounded_numbers(answer, FACTS) == bad


@pytest.mark.parametrize("answer", ["Revenue was USD12500000.", "Revenue was approx.12500000 USD."])
def test_numbers_glued_to_text_are_still_checked(answer: str) -> None:
    assert ungrounded_numbers(answer, FACTS) != []


@pytest.mark.parametrize("answer", ["Revenue was USD12,500,000.", "Revenue was approx.12,500,000 USD."])
def test_grouped_numbers_glued_to_text_are_rejected(answer: str) -> None:
    assert ungrounded_numbers(answer, FACTS) == ["12,500,000"]


@pytest.mark.parametrize(
    ("answer", "bad"),
    [
        # Each number is judged where it stands: the "5" is not the "5" inside "2025".
        ("In 2025 MER-US revenue was 5 million USD.", ["5"]),
        ("Revenue was $2,000.", ["2,000"]),
        ("Revenue was 5 000 000 USD.", ["5 000 000"]),
        ("Revenue was 5.000.000 EUR.", ["5.000.000"]),
        ("Revenue hit 2,040 in 2026.", ["2,040"]),
        ("Revenue was USD 25 on day 3.", ["25"]),
        ("Margin was 12%.", ["12"]),
    ],
)
def test_years_and_counts_are_only_bare_digits_without_a_scale(answer: str, bad: list[str]) -> None:
    assert ungrounded_numbers(answer, FACTS) == bad


@pytest.mark.parametrize(
    "answer",
    ["Revenue was 11 765 834 USD.", "Revenue was 11.765.834 EUR.", "Umsatz: 11.765.834,0 USD (2026-10)."],
)
def test_a_fact_written_with_other_separators_is_grounded(answer: str) -> None:
    assert ungrounded_numbers(answer, FACTS) == []


def test_float_facts_ground_their_one_decimal_form() -> None:
    pct = Fact(label="yoy growth pct", value=16.0, unit="%", entity="MER-JP", account="4", period="2026-09", source="s")
    assert ungrounded_numbers("Growth was 16.0% (16%).", [pct]) == []
    assert ungrounded_numbers("Growth was 16.1%.", [pct]) == ["16.1"]


# ----------------------------------------------------------------- prompt registry


@pytest.mark.parametrize("name", ["narrative", "answer"])
def test_prompt_sha256_is_the_file_text(name: str) -> None:
    prompt = registry.get(name, 1)
    text = (registry.PROMPT_DIR / f"{name}.v1.j2").read_text(encoding="utf-8")
    assert prompt.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert prompt.ref.model_dump() == {"id": name, "version": 1, "sha256": prompt.sha256}


def test_newest_version_by_default() -> None:
    newest = max(registry.available()["answer"])
    assert registry.get("answer").version == newest


def test_unknown_prompt_name_raises() -> None:
    with pytest.raises(KeyError, match="no prompt named"):
        registry.get("does_not_exist")


def test_unknown_prompt_version_raises() -> None:
    with pytest.raises(KeyError, match="no version 99"):
        registry.get("narrative", 99)


def test_templates_refuse_missing_and_unused_variables() -> None:
    prompt = registry.get("answer", 1)
    assert prompt.variables == {"question", "facts", "missing", "masked", "passages"}
    with pytest.raises(registry.PromptError, match=r"missing \['facts', 'masked', 'missing', 'passages'\]"):
        prompt.render(question="q")
    with pytest.raises(registry.PromptError, match=r"not used by the template \['temperature'\]"):
        prompt.render(question="q", facts=[], missing=[], masked=[], passages=[], temperature=0)
    # Names the template assigns itself are not the caller's to supply.
    assert "f" not in registry.get("narrative", 1).variables


def test_pins_choose_the_most_specific_version_and_unknown_pins_are_refused() -> None:
    # Unpinned, each engine uses its default version, not whatever file is newest.
    assert registry.resolve("answer", tenant="meridian", intent="metric_lookup").version == 2
    assert registry.resolve("narrative", tenant="meridian", intent="metric_lookup").version == 2
    pins = {"answer": 2, "meridian/*/narrative": 1, "globex/metric_lookup/answer": 2}
    assert registry.resolve("answer", tenant="globex", intent="metric_lookup", pins=pins).version == 2
    assert registry.resolve("narrative", tenant="meridian", intent="lookup", pins=pins).version == 1
    registry.check_pins(pins)
    # answer v1 asked for a reply shape the generator no longer accepts: refused at start, with the fix.
    with pytest.raises(registry.PromptError, match="cannot use"):
        registry.check_pins({"meridian/*/answer": 1})
    with pytest.raises(registry.PromptError, match="does not exist"):
        registry.check_pins({"meridian/*/answer": 99})
    with pytest.raises(registry.PromptError, match="does not exist"):
        registry.check_pins({"no_such_prompt": 1})


@pytest.mark.parametrize("answer", ["Payroll was 3 million USD.", "Costs rose 25% in May.", "About 12 million."])
def test_small_numbers_with_a_scale_are_checked(answer: str) -> None:
    fact = Fact(
        label="revenue MER-US 2026-10",
        value=11765834,
        unit="USD",
        entity="MER-US",
        account="4",
        period="2026-10",
        source="ledger",
    )
    assert ungrounded_numbers(answer, [fact])


async def test_model_rejecting_the_request_falls_back_to_the_template() -> None:
    from temporalio.testing import ActivityEnvironment

    from activities.llm.activity import GenerateActivities
    from docket.errors import ModelBadRequestError

    class Rejecting:
        name = "openai"

        async def generate(self, data: GenerateInput, hooks: object = None) -> GenerateResult:
            raise ModelBadRequestError("401 invalid api key")

    fact = Fact(
        label="revenue MER-US 2026-10",
        value=11765834,
        unit="USD",
        entity="MER-US",
        account="4",
        period="2026-10",
        source="ledger",
    )
    result = await ActivityEnvironment().run(
        GenerateActivities(Rejecting()).generate_answer,
        GenerateInput(question="q", intent=Intent.METRIC_LOOKUP, facts=[fact]),
    )
    assert result.generator == "template" and "11,765,834" in result.answer and not result.validated
    assert any("invalid api key" in lim for lim in result.limitations)


def test_prompts_cli_lists_shows_and_diffs() -> None:
    from typer.testing import CliRunner

    from cli.main import app

    runner = CliRunner()
    listed = runner.invoke(app, ["prompts", "list"])
    assert listed.exit_code == 0
    assert f"answer.v1  sha256 {registry.get('answer', 1).sha256[:12]}" in listed.output
    assert " * answer.v2 " in listed.output and " * narrative.v2 " in listed.output
    shown = runner.invoke(app, ["prompts", "show", "narrative", "--version", "1"])
    assert shown.exit_code == 0 and registry.get("narrative", 1).sha256 in shown.output
    assert runner.invoke(app, ["prompts", "diff", "answer", "1", "1"]).output.strip().endswith("are identical")
    missing = runner.invoke(app, ["prompts", "show", "nope"])
    assert missing.exit_code == 1


def test_a_pin_to_a_missing_version_stops_the_worker_at_start() -> None:
    from docket.settings import Settings
    from worker.main import build_generator

    with pytest.raises(registry.PromptError, match="version 9"):
        build_generator(Settings(prompt_pins={"meridian/*/answer": 9}))
    assert build_generator(Settings(prompt_pins={"meridian/*/narrative": 1})).name == "template"
