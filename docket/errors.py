"""Every error type string Docket puts on an ApplicationError, and the typed errors engines raise.

Temporal owns retries: engines raise these, adapters turn them into ApplicationError with `type` from here,
non-retryable where retrying cannot help.
"""

from __future__ import annotations

# ApplicationError.type strings. Never rename one that has run: they are matched in histories and retry policies.
UNKNOWN_PRINCIPAL = "UnknownPrincipal"
CATALOG_EMPTY = "CatalogEmpty"
INVALID_TASK = "InvalidTask"
TENANT_FILTER_MISSING = "TenantFilterMissing"
MODEL_BAD_REQUEST = "ModelBadRequest"
MODEL_UNAVAILABLE = "ModelUnavailable"
DATA_CHANGED = "DataChanged"


class DocketError(Exception):
    """Base error: carries a type string from this module and a hint a person can act on."""

    type: str = "DocketError"
    retryable: bool = False

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UnknownPrincipalError(DocketError):
    type = UNKNOWN_PRINCIPAL


class CatalogEmptyError(DocketError):
    type = CATALOG_EMPTY


class InvalidTaskError(DocketError):
    type = INVALID_TASK


class DataChangedError(DocketError):
    """The ledger changed between planning and a task: the request's figures would mix two versions."""

    type = DATA_CHANGED


class TenantFilterMissingError(DocketError):
    type = TENANT_FILTER_MISSING


class ModelBadRequestError(DocketError):
    type = MODEL_BAD_REQUEST


class ModelUnavailableError(DocketError):
    type = MODEL_UNAVAILABLE
    retryable = True

    def __init__(self, message: str, *, hint: str = "", retry_after: float | None = None) -> None:
        super().__init__(message, hint=hint)
        # Seconds the server asked us to wait (Retry-After); Temporal's next attempt honours it.
        self.retry_after = retry_after


class ConfigurationError(DocketError):
    """A setting is missing or unsafe; raised at startup, never inside a workflow."""

    type = "ConfigurationError"
