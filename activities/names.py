"""Activity and workflow names: durable identifiers recorded in history. Never rename one that has run."""

CLASSIFY = "classify_request"
AUTHORIZE = "authorize_request"
PLAN = "plan_request"
# Issue 9: classify, authorize and plan as one local activity (StagePlacement.FUSED).
UNDERSTAND = "understand_request"
LEDGER_QUERY = "ledger_query"
# Task-DAG issue: derived figures computed from other tasks' results.
COMPUTE_TASK = "compute_task"
RETRIEVE = "retrieve_documents"
GENERATE = "generate_answer"
SCORE = "score_confidence"
RECORD = "record_result"
INDEX_DOCUMENTS = "index_documents"

REQUEST_WORKFLOW = "RequestWorkflow"
INGEST_WORKFLOW = "IngestWorkflow"

# Retrieval issue: authorized ingestion and index versions.
AUTHORIZE_INGEST = "authorize_ingest"
STORE_DOCUMENTS = "store_documents"
DELETE_DOCUMENTS = "delete_documents"
INDEX_ADMIN = "index_admin"
INDEX_WORKFLOW = "IndexWorkflow"
