"""Verification fails closed: a specific error with a stable reason code, never a bool."""

from __future__ import annotations


class Reason:
    """Stable reason codes of rejected uploads (documented in docs/signing.md; never renamed)."""

    TOO_LARGE = "TOO_LARGE"
    SOURCE_MISSING = "SOURCE_MISSING"
    INVALID_OBJECT_KEY = "INVALID_OBJECT_KEY"
    MISSING_SIGNATURE = "MISSING_SIGNATURE"
    ENVELOPE_TOO_LARGE = "ENVELOPE_TOO_LARGE"
    MALFORMED_ENVELOPE = "MALFORMED_ENVELOPE"
    UNKNOWN_PRODUCER = "UNKNOWN_PRODUCER"
    UNKNOWN_KEY = "UNKNOWN_KEY"
    KEY_EXPIRED = "KEY_EXPIRED"
    KEY_REVOKED = "KEY_REVOKED"
    INVALID_SIGNATURE = "INVALID_SIGNATURE"
    MALFORMED_STATEMENT = "MALFORMED_STATEMENT"
    SUBJECT_MISMATCH = "SUBJECT_MISMATCH"
    PRODUCER_MISMATCH = "PRODUCER_MISMATCH"
    DATASET_MISMATCH = "DATASET_MISMATCH"
    DATASET_NOT_ALLOWED = "DATASET_NOT_ALLOWED"
    FUTURE_SIGNATURE = "FUTURE_SIGNATURE"
    STALE_SIGNATURE = "STALE_SIGNATURE"
    REPLAYED_SIGNATURE = "REPLAYED_SIGNATURE"
    SIZE_MISMATCH = "SIZE_MISMATCH"
    DIGEST_MISMATCH = "DIGEST_MISMATCH"
    LAKE_CONFLICT = "LAKE_CONFLICT"
    UNVERIFIED_TIMEOUT = "UNVERIFIED_TIMEOUT"
    # data contract (mlvault.contracts): the content is not fit, whoever signed it
    NO_CONTRACT = "NO_CONTRACT"
    CONTRACT_VERSION_MISMATCH = "CONTRACT_VERSION_MISMATCH"
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    EMPTY_FILE = "EMPTY_FILE"
    NO_ROWS = "NO_ROWS"
    ROW_COUNT_OUT_OF_BOUNDS = "ROW_COUNT_OUT_OF_BOUNDS"
    BAD_ENCODING = "BAD_ENCODING"
    WRONG_DELIMITER = "WRONG_DELIMITER"
    RAGGED_ROW = "RAGGED_ROW"
    CORRUPT_FILE = "CORRUPT_FILE"
    DUPLICATE_COLUMN = "DUPLICATE_COLUMN"
    MISSING_COLUMN = "MISSING_COLUMN"
    UNEXPECTED_COLUMN = "UNEXPECTED_COLUMN"
    SCHEMA_MISMATCH = "SCHEMA_MISMATCH"
    TYPE_MISMATCH = "TYPE_MISMATCH"
    NULL_VALUE = "NULL_VALUE"
    NON_FINITE = "NON_FINITE"
    OUT_OF_RANGE = "OUT_OF_RANGE"
    VALUE_NOT_ALLOWED = "VALUE_NOT_ALLOWED"
    PATTERN_MISMATCH = "PATTERN_MISMATCH"
    DUPLICATE_KEY = "DUPLICATE_KEY"
    FORMULA_INJECTION = "FORMULA_INJECTION"
    POISONING_SUSPECTED = "POISONING_SUSPECTED"  # the poisoning screen: held or rejected, as the contract says


ALL_REASONS = tuple(v for k, v in vars(Reason).items() if k.isupper())
CONTRACT_REASONS = ALL_REASONS[ALL_REASONS.index(Reason.NO_CONTRACT) :]
SIGNATURE_REASONS = ALL_REASONS[: ALL_REASONS.index(Reason.NO_CONTRACT)]


class VerificationError(Exception):
    """A permanent verdict: the upload is rejected with this reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in ALL_REASONS:
            raise ValueError(f"unknown reason code {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class TransientError(Exception):
    """Could not reach a verdict now (throttling, a service error): retry, never reject."""
