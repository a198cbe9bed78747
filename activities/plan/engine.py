"""The planner: a pure function from (classification, authorization) to data tasks and a document search.

Tasks are keyed by a hash of their content so a retried or replayed run names them identically.
"""

from __future__ import annotations

import hashlib
import json

from docket.catalog import Catalog
from docket.contracts import AuthorizeResult, ClassifyResult, DataTask, Intent, Plan, RetrievalQuery

# Intents this planner computes. Growth, trend, variance and scenario need derived tasks (issue: the task DAG);
# until then the plan says so and the request asks for figures Docket can compute, rather than answering a
# growth question with a plain lookup.
LEDGER_INTENTS = {Intent.METRIC_LOOKUP, Intent.COMPARISON}
NOT_YET = {Intent.GROWTH, Intent.TREND, Intent.VARIANCE_EXPLANATION, Intent.SCENARIO}


def task_id(task: DataTask) -> str:
    body = task.model_dump(exclude={"task_id"}, mode="json")
    return "t-" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def plan(
    tenant: str,
    question: str,
    classification: ClassifyResult,
    authorization: AuthorizeResult,
    catalog: Catalog,
) -> Plan:
    slots = classification.slots
    if classification.intent in NOT_YET:
        return Plan(unsupported=classification.intent.value)
    if slots.derived:
        # Gross profit, margins and operating income are computed by derived tasks of the task-DAG issue.
        return Plan(unsupported="derived_metric")
    masked = [m.account for m in authorization.masked]
    tasks: list[DataTask] = []
    if classification.intent in LEDGER_INTENTS:
        # A group total is one figure over the whole entity set; anything else is one figure per entity so
        # comparisons and per-entity answers fall out of the same tasks.
        if slots.entity_scope == "group" and classification.intent == Intent.METRIC_LOOKUP:
            entity_sets = [("group", list(slots.entities))]
        else:
            entity_sets = [(e, [e]) for e in slots.entities]
        for account, metric in zip(slots.accounts, slots.metrics, strict=True):
            subtree = catalog.subtree(account)
            # Left out of the total: parts the asker excluded, and parts masked for them (POL-008).
            excl = sorted({x for x in [*slots.exclude_accounts, *masked] if x in subtree and x != account})
            label = f"{metric} excl. {', '.join(catalog.accounts[x].name.lower() for x in excl)}" if excl else metric
            for entity_label, ents in entity_sets:
                for period in slots.periods:
                    t = DataTask(
                        task_id="",
                        metric=label,
                        account=account,
                        exclude_accounts=excl,
                        entity_label=entity_label,
                        entities=ents,
                        period=period,
                    )
                    tasks.append(t.model_copy(update={"task_id": task_id(t)}))
    # Context for the wording: the question plus the catalog names of what it is about, so a search for
    # "COGS" also finds "cost of goods sold".
    terms = [question]
    terms += [catalog.accounts[a].name for a in slots.accounts if a in catalog.accounts]
    terms += [catalog.entities[e].name for e in slots.entities[:5] if e in catalog.entities]
    if slots.entity_scope != "group":
        terms += slots.entities[:5]
    retrieval = RetrievalQuery(
        tenant=tenant,
        query=" ".join(terms),
        entities=list(slots.entities),
        max_clearance=authorization.clearance,
        limit=3,
        entity_tagged_only=bool(tasks),
        months=sorted({m for p in slots.periods for m in p.months}) if tasks else [],
        exclude_entities=sorted(set(catalog.entities) - set(authorization.readable_entities)),
        # A document question is answered only by passages that share most of its terms.
        min_term_coverage=0.0 if tasks else 0.6,
    )
    return Plan(tasks=tasks, retrieval=retrieval)
