"""One root for every refusal mlvault makes, and the catalogue of its stable reason codes.

A refusal is an `MlvaultError`: a reason code (a member of one of its class's reason enums) and a detail that
says what was expected and what was found. Each domain has its enum of codes and its error class; the codes are
stored in records, emitted as metric dimensions, alarmed on and documented: they are never renamed.

Verification fails closed (GUIDE.md 3.1): a check returns what it verified or raises one of these. A transient
failure (throttling, a service error) is a `TransientError` instead: never a verdict, always retried.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class IngestReason(StrEnum):
    """Why an upload is refused before its content is read (docs/signing.md)."""

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


class ContractReason(StrEnum):
    """Why a file's content is refused by its dataset's data contract or the poisoning screen
    (docs/contracts.md): the content is not fit, whoever signed it."""

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
    LINE_TOO_LONG = "LINE_TOO_LONG"  # a CSV or JSON Lines line (the header included) longer than the reader's block


class ReviewReason(StrEnum):
    """Why a human's decision on a held upload cannot be applied."""

    INVALID_DECISION = "INVALID_DECISION"
    NO_REASON = "NO_REASON"
    NO_REVIEWER = "NO_REVIEWER"
    NO_SUCH_UPLOAD = "NO_SUCH_UPLOAD"
    NOT_HELD = "NOT_HELD"  # already decided, or never held: the first decision stands


class ManifestReason(StrEnum):
    """Why no training manifest can be built or trusted."""

    NO_ACCEPTED_DATA = "NO_ACCEPTED_DATA"
    NO_TRAINABLE_DATA = "NO_TRAINABLE_DATA"  # accepted data, but every file alone has more rows than max_rows
    AMBIGUOUS_CONTRACT_VERSION = "AMBIGUOUS_CONTRACT_VERSION"  # accepted data of several contract versions
    RECORD_INVALID = "RECORD_INVALID"  # an accepted ledger record lacks what a manifest entry needs
    MANIFEST_INVALID = "MANIFEST_INVALID"
    MANIFEST_TOO_LARGE = "MANIFEST_TOO_LARGE"
    MANIFEST_DIGEST_MISMATCH = "MANIFEST_DIGEST_MISMATCH"


class TrainingReason(StrEnum):
    """Why a training could not produce a model."""

    DIGEST_MISMATCH = "DIGEST_MISMATCH"
    SIZE_MISMATCH = "SIZE_MISMATCH"
    VERSION_MISMATCH = "VERSION_MISMATCH"
    CONTRACT_VIOLATION = "CONTRACT_VIOLATION"
    ROW_COUNT_MISMATCH = "ROW_COUNT_MISMATCH"
    CONTRACT_MISMATCH = "CONTRACT_MISMATCH"
    UNSUPPORTED = "UNSUPPORTED"
    TOO_MANY_ROWS = "TOO_MANY_ROWS"
    NOT_ENOUGH_DATA = "NOT_ENOUGH_DATA"
    # a team's own training code (the model package, mlvault.model_package)
    NO_ONNX_MODEL = "NO_ONNX_MODEL"  # the training output has no model.onnx
    NO_DESCRIPTOR = "NO_DESCRIPTOR"  # the training output has no descriptor.json
    DESCRIPTOR_INVALID = "DESCRIPTOR_INVALID"  # descriptor.json is not a model descriptor
    DESCRIPTOR_MISMATCH = "DESCRIPTOR_MISMATCH"  # the descriptor disagrees with the dataset's contract
    ONNX_INVALID = "ONNX_INVALID"  # model.onnx does not load, or its inputs/outputs are not the descriptor's
    TRAINING_OUTPUT_INVALID = "TRAINING_OUTPUT_INVALID"  # the output archive is unsafe or not an archive
    TRAINING_JOB_FAILED = "TRAINING_JOB_FAILED"  # the training job failed (SageMaker's reason in the detail)
    TRAINING_JOB_TIMEOUT = "TRAINING_JOB_TIMEOUT"  # the job ran past its maximum runtime and was stopped
    INPUT_DIGEST_MISMATCH = "INPUT_DIGEST_MISMATCH"  # inside the job, a channel file is not the file mlvault wrote
    CODE_DIGEST_MISMATCH = "CODE_DIGEST_MISMATCH"  # the source asset is not the one deployed (prepare re-hashes it)


class PipelineReason(StrEnum):
    """Why a run of the model pipeline stops at a step (recorded in its run record first)."""

    GATES_FAILED = "GATES_FAILED"
    NOT_EVALUATED = "NOT_EVALUATED"
    NOT_SIGNABLE = "NOT_SIGNABLE"
    ARTIFACT_TOO_LARGE = "ARTIFACT_TOO_LARGE"
    ARTIFACT_DIGEST_MISMATCH = "ARTIFACT_DIGEST_MISMATCH"
    UNKNOWN_MODEL = "UNKNOWN_MODEL"  # the run names a model the stage's bundled models document does not hold
    WRONG_ENGINE = "WRONG_ENGINE"  # a step of one engine asked to run a model of the other (train vs prepare)


class RegistryReason(StrEnum):
    """Why the model registry refuses a record or a change of status."""

    INVALID_RECORD = "INVALID_RECORD"
    NO_SUCH_MODEL = "NO_SUCH_MODEL"
    STATUS_CONFLICT = "STATUS_CONFLICT"  # the model is not in a status the change may come from


class ModelReason(StrEnum):
    """Why a model's OpenSSF signature does not verify (mlvault.attestation.openssf)."""

    MODEL_SIGNATURE_TOO_LARGE = "MODEL_SIGNATURE_TOO_LARGE"
    MALFORMED_MODEL_SIGNATURE = "MALFORMED_MODEL_SIGNATURE"  # not a well-formed bundle / statement of this format
    MODEL_SIGNATURE_UNSUPPORTED = "MODEL_SIGNATURE_UNSUPPORTED"  # well formed, another variant (shards, blake2, v0.1)
    MODEL_SIGNATURE_INVALID = "MODEL_SIGNATURE_INVALID"  # does not verify with the given public key
    MODEL_FILE_MISSING = "MODEL_FILE_MISSING"  # a signed file is not there
    MODEL_FILE_EXTRA = "MODEL_FILE_EXTRA"  # a file that was not signed is there
    MODEL_FILE_UNSUPPORTED = "MODEL_FILE_UNSUPPORTED"  # a symbolic link or special file in the model
    MODEL_DIGEST_MISMATCH = "MODEL_DIGEST_MISMATCH"  # a file's bytes are not the signed bytes


class RolloutReason(StrEnum):
    """Why a model must not be deployed (or approved), or is not a rollback target."""

    MODEL_NOT_REGISTERED = "MODEL_NOT_REGISTERED"
    MODEL_NOT_SIGNED = "MODEL_NOT_SIGNED"
    MODEL_NOT_DEPLOYABLE = "MODEL_NOT_DEPLOYABLE"  # its status forbids it (rolled back, revoked, ...)
    RECORD_TAMPERED = "RECORD_TAMPERED"  # the registry record changed after it was signed
    WRONG_SIGNING_KEY = "WRONG_SIGNING_KEY"  # signed by another key than the pinned one
    VERSION_PINS_ANOTHER_MODEL = "VERSION_PINS_ANOTHER_MODEL"
    NO_PENDING_APPROVAL = "NO_PENDING_APPROVAL"
    NO_REASON = "NO_REASON"
    MODEL_NOT_SERVED = "MODEL_NOT_SERVED"  # its registry record names a model the bundled serving document lacks


class RevocationReason(StrEnum):
    """Why a producer key's revocation (`mlvault producers revoke`, the revoke function) is refused before anything
    is recorded: a revocation stands for good, so one that names no key, gives no reason, or says who or when in no
    form the function can hold to is never written."""

    UNKNOWN_KEY = "UNKNOWN_KEY"  # the key id is in no producer entry of the bundled trust registry (a typo)
    NO_REASON = "NO_REASON"  # an empty or whitespace-only reason
    MALFORMED_REVOKER = "MALFORMED_REVOKER"  # revoked_by is not an IAM or STS principal ARN (the caller's identity)
    MALFORMED_EFFECTIVE_AT = "MALFORMED_EFFECTIVE_AT"  # effective_at is not an ISO 8601 time with a time zone


class ServeReason(StrEnum):
    """Why the serving function refuses its pinned model (besides ModelReason's codes, which pass through)."""

    MODEL_UNSIGNED = "MODEL_UNSIGNED"  # the pinned signature object version does not exist
    MODEL_NOT_FOUND = "MODEL_NOT_FOUND"  # the pinned model object version does not exist
    MODEL_VERSION_MISMATCH = "MODEL_VERSION_MISMATCH"  # S3 returned another version than the pinned one
    MODEL_TOO_LARGE = "MODEL_TOO_LARGE"
    MODEL_ID_MISMATCH = "MODEL_ID_MISMATCH"  # the signature names another model id (or none) than the pin
    MODEL_MALFORMED = "MODEL_MALFORMED"  # signed and pinned, but not a model artifact this code can load
    MODEL_REVOKED = "MODEL_REVOKED"
    MODEL_ROLLED_BACK = "MODEL_ROLLED_BACK"
    MODEL_NOT_REGISTERED = "MODEL_NOT_REGISTERED"
    MODEL_NOT_SERVABLE = "MODEL_NOT_SERVABLE"  # registered, with a status that may not serve (e.g. REGISTERED)
    SIGNING_KEY_NOT_PINNED = "SIGNING_KEY_NOT_PINNED"  # an alias or key id instead of a key ARN
    SIGNING_KEY_UNUSABLE = "SIGNING_KEY_UNUSABLE"  # deleted, disabled, pending deletion, or not ECC_NIST_P256
    # model packages (mlvault.model_package): the one served format
    MODEL_FORMAT_UNSUPPORTED = "MODEL_FORMAT_UNSUPPORTED"  # a signed single-file model of the format before packages
    MODEL_OUTPUT_INVALID = "MODEL_OUTPUT_INVALID"  # the model predicted a label outside its classes (a server failure)
    MODEL_NAME_MISMATCH = "MODEL_NAME_MISMATCH"  # the pin (or its descriptor) is another model than the function's
    MODEL_NOT_PINNED = "MODEL_NOT_PINNED"  # the version pins no model (a serving function's first, before any deploy)


class AnchorReason(StrEnum):
    """Why the trust anchors bundled with a function's code (mlvault.trust.anchors) refuse: the file, or the
    model-signing key it names; or why the bundled serving document (mlvault.trust.serving_map) or models document
    (mlvault.training.specs) does."""

    ANCHORS_MISSING = "ANCHORS_MISSING"  # no trust/anchors.json in the function's bundle
    ANCHORS_MALFORMED = "ANCHORS_MALFORMED"  # not the documented shape (the detail names the field)
    ANCHORS_WRONG_STAGE = "ANCHORS_WRONG_STAGE"  # anchors of another stage than the function's
    SIGNING_KEY_NOT_TRUSTED = "SIGNING_KEY_NOT_TRUSTED"  # the KMS key's public key is not the bundled fingerprint
    SERVING_MISSING = "SERVING_MISSING"  # no trust/serving.json in the function's bundle
    SERVING_MALFORMED = "SERVING_MALFORMED"  # not the documented shape, or an alarm of two models (the detail says)
    SERVING_WRONG_STAGE = "SERVING_WRONG_STAGE"  # the serving document of another stage than the function's
    MODELS_MISSING = "MODELS_MISSING"  # no trust/models.json in the pipeline or sign function's bundle
    PRODUCERS_MISSING = "PRODUCERS_MISSING"  # no trust/producers.json (trust registry) in the revoke function's bundle
    PRODUCERS_MALFORMED = "PRODUCERS_MALFORMED"  # a bundled trust registry that does not parse (the detail says why)


class RequestReason(StrEnum):
    """Why the serving function refuses a caller's request (a client error: answered, never a function error)."""

    MALFORMED_REQUEST = "MALFORMED_REQUEST"  # not a JSON object with exactly the field "rows"
    ROWS_NOT_A_LIST = "ROWS_NOT_A_LIST"
    TOO_MANY_ROWS = "TOO_MANY_ROWS"
    ROW_NOT_AN_OBJECT = "ROW_NOT_AN_OBJECT"
    MISSING_FEATURE = "MISSING_FEATURE"
    NOT_A_NUMBER = "NOT_A_NUMBER"  # a numeric feature given a string, a list, an object...
    NOT_FINITE = "NOT_FINITE"  # NaN, an infinity, or a number too large for a float
    NOT_A_STRING = "NOT_A_STRING"  # a categorical feature given something else than a string
    NOT_AN_INTEGER = "NOT_AN_INTEGER"  # an int64 input given a number that is not an integer (or out of int64 range)
    NOT_A_BOOLEAN = "NOT_A_BOOLEAN"  # a bool input given something else than true or false
    NULL_NOT_ALLOWED = "NULL_NOT_ALLOWED"  # null for an input whose type has no missing value (int64, bool)
    # the function URL (HTTP, payload format 2.0)
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"  # not POST (405)
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"  # a body that does not say it is JSON (415)
    NOT_JSON = "NOT_JSON"  # the body is not UTF-8 JSON (or not valid base64)


class MlvaultError(Exception):
    """A refusal: `reason` is a stable code of one of the class's `reasons` enums, `detail` says expected X,
    got Y. The message is "REASON: detail"."""

    reasons: ClassVar[tuple[type[StrEnum], ...]] = ()

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = self.code(reason)
        self.detail = detail

    @classmethod
    def code(cls, reason: str) -> StrEnum:
        """The enum member of `reason`; ValueError for a code this class does not know (a bug, not a refusal)."""
        for enum in cls.reasons:
            if reason in enum._value2member_map_:
                return enum(reason)
        known = ", ".join(enum.__name__ for enum in cls.reasons) or "none"
        raise ValueError(f"unknown reason code {reason!r} for {cls.__name__} (codes of {known})")

    @classmethod
    def codes(cls) -> tuple[str, ...]:
        """Every code this class may carry, in declaration order."""
        return tuple(dict.fromkeys(member.value for enum in cls.reasons for member in enum))


class TransientError(Exception):
    """Could not reach a verdict now (throttling, a service error): retry, never reject."""


class AnnouncementPending(TransientError):
    """A record stands but its announcement (event, alert) could not be published now: it stays pending on the
    record (mlvault.outbox) and is delivered by a retry or the reconciler's sweep; never a second record."""


class VerificationError(MlvaultError):
    """An upload's permanent verdict: it is rejected (or held) with this code."""

    reasons = (IngestReason, ContractReason)


class ReviewError(MlvaultError):
    """A review that cannot be applied (no such upload, not held, no reason given)."""

    reasons = (ReviewReason,)


class ManifestError(MlvaultError):
    """No manifest can be built or trusted; the detail says which record or object and why."""

    reasons = (ManifestReason,)


class TrainingError(MlvaultError):
    """No model: the detail says what to fix."""

    reasons = (TrainingReason,)


class PipelineFailed(MlvaultError):
    """A run that cannot go on (recorded in the registry first). Step Functions sees the class name."""

    reasons = (
        PipelineReason,
        ManifestReason,
        TrainingReason,
        IngestReason,
        ContractReason,
        RegistryReason,
        AnchorReason,  # the sign step: the bundled anchors, or a key that is not the anchored one
        ServeReason,  # the sign step: SIGNING_KEY_UNUSABLE (disabled, pending deletion)
    )


class GatesFailed(PipelineFailed):
    """The model failed one or more compliance gates; `failures` names them (the run record has the report)."""

    def __init__(self, detail: str, failures: tuple[str, ...] = ()) -> None:
        super().__init__(PipelineReason.GATES_FAILED, detail)
        self.failures = failures


class ModelRegistryError(MlvaultError):
    """A record the registry refuses, or a change of status it cannot make."""

    reasons = (RegistryReason,)


class ModelVerificationError(MlvaultError):
    """A model whose signature or files do not verify: it must not be served."""

    reasons = (ModelReason,)


class RolloutRefused(MlvaultError):
    """The model must not be deployed (or is not a rollback target)."""

    reasons = (RolloutReason, ModelReason, ServeReason, AnchorReason)


class RevocationRefused(MlvaultError):
    """A key's revocation refused before anything is recorded, tainted, revoked or announced. The revoke handler
    lets it out: the CLI shows Lambda's errorMessage ("REASON: detail") as one line."""

    reasons = (RevocationReason,)


class AttestationError(MlvaultError):
    """Serving refuses its pinned model; `stage`, `model_id` and `model_version` say which pin (for the metric and
    the log)."""

    reasons = (ModelReason, ServeReason, AnchorReason)

    def __init__(
        self, reason: str, detail: str, *, stage: str = "", model_id: str = "", model_version: str = ""
    ) -> None:
        super().__init__(reason, detail)
        self.stage = stage
        self.model_id = model_id
        self.model_version = model_version


class TrustAnchorError(MlvaultError):
    """The trust anchors bundled with the function's code are missing, malformed or of another stage: nothing that
    depends on them may proceed (fail closed)."""

    reasons = (AnchorReason, ServeReason)  # ServeReason: SIGNING_KEY_NOT_PINNED (an alias instead of a key ARN)


class ServingFailed(MlvaultError):
    """The attested model failed while serving (e.g. it predicted a label outside its classes): not the caller's
    error and not a refusal of the pin, a server failure. The handler lets it out: a function error, counted in
    Lambda's Errors (the serving-errors alarm rolls such a model back)."""

    reasons = (ServeReason,)


class InvalidRequest(MlvaultError):
    """A serving request that does not fit the model's feature schema: the caller's error. `field` names where
    (e.g. "rows[3].petal_length"; "" for the request as a whole)."""

    reasons = (RequestReason,)

    def __init__(self, reason: str, detail: str, *, field: str = "") -> None:
        super().__init__(reason, detail)
        self.field = field
