"""Recording: the result, one audit row per stage, and usage, written once per (workflow id, step).

A retried record (the worker died after committing, before Temporal heard back) finds its rows already
there and writes nothing new; its audit events take no place in the tenant's hash chain (docket/audit.py).
"""

from __future__ import annotations

from sqlalchemy import Engine

from docket import audit
from docket.contracts import RecordInput, RecordResult
from docket.db import RequestRecord, UsageRecord, insert_ignore


def record(engine: Engine, data: RecordInput, anchor_every: int = audit.DEFAULT_ANCHOR_EVERY) -> RecordResult:
    r = data.result
    with engine.begin() as conn:
        wrote_result = insert_ignore(
            conn,
            RequestRecord,
            [
                {
                    "workflow_id": data.workflow_id,
                    "tenant": r.tenant,
                    "principal_id": r.principal_id,
                    "question": r.question,
                    "outcome": r.outcome.value,
                    "result": r.model_dump(mode="json"),
                }
            ],
            keys=["workflow_id"],
        )
        insert_ignore(
            conn,
            UsageRecord,
            [
                {
                    "workflow_id": data.workflow_id,
                    "tenant": r.tenant,
                    "principal_id": r.principal_id,
                    "model": r.model,
                    "prompt_tokens": r.usage.prompt_tokens,
                    "completion_tokens": r.usage.completion_tokens,
                    "cost_usd": r.usage.cost_usd,
                }
            ],
            keys=["workflow_id"],
        )
        # Last, because it locks the tenant's chain head until commit: every other writer of the tenant waits
        # for it, so it should be held as briefly as possible.
        written = audit.append(
            conn,
            r.tenant,
            [
                audit.NewEvent(
                    workflow_id=data.workflow_id,
                    step=e.step,
                    stage=e.stage,
                    actor=e.actor,
                    decision=e.decision,
                    detail=e.detail,
                    policy_version=e.policy_version,
                    prompt_sha256=e.prompt_sha256,
                    model=e.model,
                    outcome=r.outcome.value,
                )
                for e in data.events
            ],
            anchor_every=anchor_every,
        )
    return RecordResult(audit_rows_written=written, result_written=bool(wrote_result))
