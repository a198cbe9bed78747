"""Recording: the result, one audit row per stage, and usage, written once per (workflow id, step).

A retried record (the worker died after committing, before Temporal heard back) finds its rows already
there and writes nothing new.
"""

from __future__ import annotations

from sqlalchemy import Engine

from docket.contracts import RecordInput, RecordResult
from docket.db import AuditEventRow, RequestRecord, UsageRecord, insert_ignore


def record(engine: Engine, data: RecordInput) -> RecordResult:
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
        audit = insert_ignore(
            conn,
            AuditEventRow,
            [
                {
                    "workflow_id": data.workflow_id,
                    "step": e.step,
                    "stage": e.stage,
                    "tenant": r.tenant,
                    "actor": e.actor,
                    "decision": e.decision,
                    "detail": e.detail,
                    "policy_version": e.policy_version,
                    "prompt_sha256": e.prompt_sha256,
                    "model": e.model,
                }
                for e in data.events
            ],
            keys=["workflow_id", "step"],
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
    return RecordResult(audit_rows_written=audit, result_written=bool(wrote_result))
