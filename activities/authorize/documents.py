"""Ingestion is authorized too: who may add (or delete) which documents in which tenant, decided by Cedar."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cedarpy
from sqlalchemy import Engine
from sqlmodel import Session

from activities.authorize.engine import parse_policies
from docket.db import Document, Principal
from docket.ingest import CLEARANCES

DOCUMENT_POLICIES = Path(__file__).with_name("documents.cedar")


@dataclass(frozen=True)
class DocumentChange:
    """One document a principal wants to add/replace or delete, at the classification that governs it."""

    tenant: str
    doc_id: str
    classification: str
    action: str  # "add_document" | "delete_document"


def planned_changes(
    engine: Engine, tenant: str, added: list[dict[str, Any]], deleted: list[str]
) -> list[DocumentChange]:
    """What a principal asks to change, each judged at the higher of its stored and its new classification
    (nobody downgrades what they could not read); deleting a document that does not exist is judged at public."""
    changes: list[DocumentChange] = []
    with Session(engine) as session:
        for doc in added:
            stored = session.get(Document, (tenant, doc["doc_id"]))
            levels = [doc["classification"]] + ([stored.classification] if stored is not None else [])
            level = max(levels, key=lambda c: CLEARANCES.index(c) if c in CLEARANCES else len(CLEARANCES))
            changes.append(DocumentChange(tenant, doc["doc_id"], level, "add_document"))
        for doc_id in deleted:
            stored = session.get(Document, (tenant, doc_id))
            changes.append(
                DocumentChange(tenant, doc_id, stored.classification if stored else "public", "delete_document")
            )
    return changes


@dataclass(frozen=True)
class DocumentDecision:
    allowed: bool
    policies: list[str]
    reasons: list[str]


class DocumentAuthorizer:
    """Evaluates documents.cedar; one decision per document, all of them must be allowed."""

    def __init__(self, source: str | None = None) -> None:
        self.policies = parse_policies(source or DOCUMENT_POLICIES.read_text(encoding="utf-8"))
        self._handle = cedarpy.PolicySet.from_str(self.policies.text)

    def decide(self, principal: Principal | None, changes: list[DocumentChange]) -> DocumentDecision:
        if principal is None:
            return DocumentDecision(False, ["DOC-DEFAULT-DENY"], ["unknown principal"])
        if not changes:
            return DocumentDecision(False, ["DOC-DEFAULT-DENY"], ["nothing to add or delete"])
        entities: list[dict[str, Any]] = [
            {
                "uid": {"__entity": {"type": "Docket::Principal", "id": principal.id}},
                "attrs": {
                    "tenant": principal.tenant,
                    "roles": list(principal.roles),
                    "clearance": CLEARANCES.index(principal.clearance) if principal.clearance in CLEARANCES else 0,
                },
                "parents": [],
            }
        ]
        requests = []
        for i, change in enumerate(changes):
            level = CLEARANCES.index(change.classification) if change.classification in CLEARANCES else len(CLEARANCES)
            entities.append(
                {
                    "uid": {"__entity": {"type": "Docket::DocumentTarget", "id": f"{i}:{change.doc_id}"}},
                    "attrs": {"tenant": change.tenant, "level": level},
                    "parents": [],
                }
            )
            requests.append(
                {
                    "principal": f'Docket::Principal::"{principal.id}"',
                    "action": f'Docket::Action::"{change.action}"',
                    "resource": f'Docket::DocumentTarget::"{i}:{change.doc_id}"',
                    "context": {},
                }
            )
        handle = cedarpy.Entities.from_json_str(json.dumps(entities))
        results = list(cedarpy.is_authorized_batch(requests, self._handle, handle))
        denied_ids: set[str] = set()
        reasons: list[str] = []
        allowed_ids: set[str] = set()
        for change, res in zip(changes, results, strict=True):
            ids = sorted(
                {self.policies.statements[int(r.removeprefix("policy"))].policy_id for r in res.diagnostics.reasons}
            )
            if res.allowed:
                allowed_ids.update(ids)
                continue
            ids = ids or ["DOC-DEFAULT-DENY"]
            denied_ids.update(ids)
            verb = "add" if change.action == "add_document" else "delete"
            why = "; ".join(self._reason(pid) for pid in ids)
            reasons.append(f"{principal.id} may not {verb} {change.doc_id} ({change.classification}): {why}")
        if denied_ids:
            return DocumentDecision(False, sorted(denied_ids), reasons)
        return DocumentDecision(True, sorted(allowed_ids), [])

    def _reason(self, policy_id: str) -> str:
        if policy_id == "DOC-DEFAULT-DENY":
            return "no policy permits it (document managers: cfo, finance_director, admin, content_admin)"
        for s in self.policies.statements:
            if s.policy_id == policy_id:
                return f"{policy_id}: {s.reason}"
        return policy_id
