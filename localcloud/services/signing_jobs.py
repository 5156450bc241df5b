"""AWS Signer: signing jobs (gap 19).

19. AWS Signer. moto has signing profiles and platforms only: StartSigningJob, DescribeSigningJob,
   ListSigningJobs and RevokeSignature do not exist, and GetSigningProfile of an unknown name is a 500. AWS
   signs a versioned S3 object with a profile (source `s3: {bucketName, key, version}`, destination
   `s3: {bucketName, prefix}`), asynchronously: the job is InProgress, then Succeeded with the signed object at
   `prefix + jobId` (`+ ".zip"` for a .zip source on the AWSLambda platform), or Failed with a statusReason (a
   source that is not a zip, empty, or already signed). Here the four operations follow botocore's `signer`
   model: StartSigningJob checks the profile (ResourceNotFoundException), that the source bucket is versioned
   and that the object exists at that version (ValidationException), that the caller may read it and write the
   destination (s3:GetObjectVersion and s3:PutObject, bucket policies included: Signer works with the caller's
   permissions), and returns the jobId at once (the same job again for the same clientRequestToken); the job
   is InProgress until a worker thread signs, a moment later. Signing a Lambda zip embeds the signature in the
   zip's archive comment: the SHA-384 digest of the zip without it, the job, the profile version, the
   platform and the signature's expiry, signed with ECDSA P-384 by a key of this local cloud that nothing
   outside it holds (AWS Signer's certificate in AWS). Lambda code signing (services/lambda_codesigning.py, gap 20)
   verifies it. RevokeSignature records the revocation (revocationRecord, isRevoked); the signature's expiry is
   the profile's signatureValidityPeriod (135 months by default) after signing. GetSigningProfile of an unknown
   profile answers ResourceNotFoundException.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localcloud.server import LocalCloud

MARKER = b"LCSIGNER1:"  # the archive comment of a zip this local cloud's Signer signed starts with it
SIGNING_DELAY = 0.2  # seconds a job stays InProgress
_MONTHS_DAYS = 30.4375


@dataclass
class SigningJob:
    job_id: str
    profile: Any  # moto's SigningProfile
    source: dict[str, str]
    destination: dict[str, str]
    requested_by: str
    account: str
    token: str
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    status: str = "InProgress"
    status_reason: str = ""
    completed_at: datetime | None = None
    expires_at: datetime | None = None
    signed_key: str | None = None
    revocation: dict[str, Any] | None = None
    signed_key_planned: str = ""

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "jobId": self.job_id,
            "source": {"s3": dict(self.source)},
            "platformId": self.profile.platform_id,
            "platformDisplayName": _display_name(self.profile.platform_id),
            "profileName": self.profile.name,
            "profileVersion": self.profile.profile_version,
            "createdAt": self.created_at.timestamp(),
            "requestedBy": self.requested_by,
            "status": self.status,
            "jobOwner": self.account,
            "jobInvoker": self.account,
        }
        if self.status_reason:
            out["statusReason"] = self.status_reason
        if self.completed_at:
            out["completedAt"] = self.completed_at.timestamp()
        if self.expires_at:
            out["signatureExpiresAt"] = self.expires_at.timestamp()
        if self.signed_key:
            out["signedObject"] = {"s3": {"bucketName": self.destination["bucketName"], "key": self.signed_key}}
        if self.revocation:
            out["revocationRecord"] = self.revocation
        return out

    def summary(self) -> dict[str, Any]:
        full = self.describe()
        keep = ("jobId", "source", "platformId", "platformDisplayName", "profileName", "profileVersion", "createdAt")
        out = {k: full[k] for k in keep}
        out.update({k: full[k] for k in ("signedObject", "signatureExpiresAt") if k in full})
        out.update(status=self.status, isRevoked=self.revocation is not None)
        out.update(jobOwner=self.account, jobInvoker=self.account)
        return out


class Signer:
    """The signing jobs of the local cloud and its signing key."""

    def __init__(self, cloud: LocalCloud) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        self._cloud = cloud
        self._key = ec.generate_private_key(ec.SECP384R1())
        self.jobs: dict[str, SigningJob] = {}
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()

    # --- signatures -----------------------------------------------------------------------------------

    def sign_zip(self, data: bytes, claims: dict[str, Any]) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        unsigned, comment = split_comment(data)
        if comment.startswith(MARKER):
            raise ValueError("the zip file already has a signature")
        body = {**claims, "digest": hashlib.sha384(unsigned).hexdigest()}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        signature = self._key.sign(canonical, ec.ECDSA(hashes.SHA384()))
        block = MARKER + base64.b64encode(
            json.dumps({**body, "signature": base64.b64encode(signature).decode()}).encode()
        )
        if len(block) > 0xFFFF:
            raise ValueError("signature block too large for a zip comment")
        return unsigned[:-2] + len(block).to_bytes(2, "little") + block

    def signature_of(self, data: bytes) -> dict[str, Any] | None:
        """The claims of the signature a zip carries: None when it carries none; ValueError when it carries one that
        is not intact (the zip changed since it was signed, or the signature is not this Signer's)."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        try:
            unsigned, comment = split_comment(data)
        except ValueError:
            return None  # not a zip: no signature
        if not comment.startswith(MARKER):
            return None
        try:
            claims = json.loads(base64.b64decode(comment[len(MARKER) :], validate=True))
            signature = base64.b64decode(claims.pop("signature"), validate=True)
        except (ValueError, KeyError) as err:
            raise ValueError("the signature block is malformed") from err
        if claims.get("digest") != hashlib.sha384(unsigned).hexdigest():
            raise ValueError("the code changed after it was signed")
        canonical = json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()
        try:
            self._key.public_key().verify(signature, canonical, ec.ECDSA(hashes.SHA384()))
        except InvalidSignature as err:
            raise ValueError("the signature does not verify") from err
        return claims

    # --- jobs -----------------------------------------------------------------------------------------

    def start(self, backend: Any, params: dict[str, Any], caller: Any) -> SigningJob:
        from moto.s3.models import s3_backends

        from localcloud.authz import AccessDenied
        from localcloud.iam_actions import Need

        name = params.get("profileName", "")
        profile = backend.signing_profiles.get(name)
        if profile is None:
            raise _error("ResourceNotFoundException", f"The signing profile {name} does not exist.", 404)
        if profile.status != "Active":
            raise _error("ValidationException", f"The signing profile {name} is {profile.status}.")
        token = params.get("clientRequestToken") or ""
        with self._lock:
            if token and token in self._tokens:
                return self.jobs[self._tokens[token]]
        source = (params.get("source") or {}).get("s3") or {}
        destination = (params.get("destination") or {}).get("s3") or {}
        if not all(source.get(k) for k in ("bucketName", "key", "version")):
            raise _error("ValidationException", "source.s3 needs bucketName, key and version.")
        if not destination.get("bucketName"):
            raise _error("ValidationException", "destination.s3 needs a bucketName.")
        s3 = s3_backends[self._cloud.account]["aws"]
        bucket = s3.buckets.get(source["bucketName"])
        if bucket is None or bucket.versioning_status != "Enabled":
            raise _error("ValidationException", f"The source bucket {source['bucketName']} must be versioning enabled.")
        if s3.buckets.get(destination["bucketName"]) is None:
            raise _error("ValidationException", f"The destination bucket {destination['bucketName']} does not exist.")
        try:
            found = s3.get_object(source["bucketName"], source["key"], version_id=source["version"])
        except Exception:  # noqa: BLE001 - moto's NoSuchVersion: Signer refuses the request
            found = None
        if found is None:
            raise _error(
                "ValidationException",
                f"The source object s3://{source['bucketName']}/{source['key']} does not exist at version "
                f"{source['version']}.",
            )
        prefix = destination.get("prefix", "")
        job_id = str(uuid.uuid4())
        lambda_zip = source["key"].endswith(".zip") and profile.platform_id.startswith("AWSLambda")
        signed_key = f"{prefix}{job_id}{'.zip' if lambda_zip else ''}"
        try:
            for need, bucket_name in (
                (
                    Need("s3:GetObjectVersion", f"arn:aws:s3:::{source['bucketName']}/{source['key']}"),
                    source["bucketName"],
                ),
                (
                    Need("s3:PutObject", f"arn:aws:s3:::{destination['bucketName']}/{signed_key}"),
                    destination["bucketName"],
                ),
            ):
                policy = s3.buckets[bucket_name].policy
                self._cloud.authorizer.check(caller, need, resource_policy=json.loads(policy) if policy else None)
        except AccessDenied as denied:
            raise _error("AccessDeniedException", denied.message, 403) from None
        job = SigningJob(
            job_id=job_id,
            profile=profile,
            source={k: source[k] for k in ("bucketName", "key", "version")},
            destination={"bucketName": destination["bucketName"], "prefix": prefix},
            requested_by=caller.display,
            account=self._cloud.account,
            token=token,
            signed_key_planned=signed_key,
        )
        with self._lock:
            self.jobs[job.job_id] = job
            if token:
                self._tokens[token] = job.job_id
        timer = threading.Timer(SIGNING_DELAY, self.complete, args=(job,))
        timer.daemon = True
        timer.start()
        return job

    def job(self, job_id: str) -> SigningJob:
        found = self.jobs.get(job_id)
        if found is None:
            raise _error("ResourceNotFoundException", f"The signing job {job_id} does not exist.", 404)
        return found

    def complete(self, job: SigningJob) -> None:
        from moto.s3.models import s3_backends

        s3 = s3_backends[self._cloud.account]["aws"]
        try:
            source = s3.get_object(job.source["bucketName"], job.source["key"], version_id=job.source["version"])
            data = bytes(source.value)
            if not data:
                raise ValueError("the source object is empty")
            period = job.profile.signature_validity_period or {"value": 135, "type": "MONTHS"}
            days = {"DAYS": 1, "MONTHS": _MONTHS_DAYS, "YEARS": 365.25}[period["type"]] * int(period["value"])
            expires = datetime.now(UTC) + timedelta(days=days)
            claims = {
                "jobId": job.job_id,
                "profileVersionArn": job.profile.profile_version_arn,
                "platformId": job.profile.platform_id,
                "expiresAt": int(expires.timestamp()),
            }
            signed = self.sign_zip(data, claims)
            key = job.signed_key_planned
            s3.put_object(job.destination["bucketName"], key, signed)
            job.signed_key, job.expires_at = key, expires
            job.status, job.status_reason = "Succeeded", "Signing Succeeded"
        except Exception as err:  # noqa: BLE001 - the job fails with the reason, as Signer reports it
            job.status, job.status_reason = "Failed", f"Signing failed: {err}"
        job.completed_at = datetime.now(UTC)
        self._cloud.record({"kind": "signing-job", "job": job.job_id, "status": job.status, "key": job.signed_key})


def split_comment(data: bytes) -> tuple[bytes, bytes]:
    """(the zip with an empty archive comment, its comment); ValueError if data is not a zip."""
    at = data.rfind(b"PK\x05\x06")
    if at < 0 or len(data) < at + 22:
        raise ValueError("not a zip file")
    length = int.from_bytes(data[at + 20 : at + 22], "little")
    if at + 22 + length != len(data):
        raise ValueError("malformed zip file")
    return data[: at + 20] + b"\x00\x00", data[at + 22 :]


def _display_name(platform_id: str) -> str:
    from moto.signer.models import SignerBackend

    return next((p["displayName"] for p in SignerBackend.platforms if p["platformId"] == platform_id), platform_id)


def _error(code: str, message: str, status: int = 400) -> Exception:
    from moto.core.exceptions import JsonRESTError

    error = JsonRESTError(code, message)
    error.code = status
    return error


def install(cloud: LocalCloud) -> None:
    import moto.signer.urls as urls
    from moto.signer.responses import SignerResponse

    from localcloud.authz import access_key_of

    signer = cloud.signer
    urls.url_paths.update(
        {
            "{0}/signing-jobs$": SignerResponse.dispatch,
            "{0}/signing-jobs/(?P<jobId>[^/]+)$": SignerResponse.dispatch,
            "{0}/signing-jobs/(?P<jobId>[^/]+)/revoke$": SignerResponse.dispatch,
        }
    )
    original_get_profile = SignerResponse.get_signing_profile

    def caller(self: Any) -> Any:
        found = cloud.authorizer.caller(access_key_of(self.headers, self.querystring))
        if found is None:  # authz.py refused unknown keys before this
            raise _error("AccessDeniedException", "unknown caller", 403)
        return found

    def start_signing_job(self: Any) -> str:
        job = signer.start(self.signer_backend, json.loads(self.body or "{}"), caller(self))
        return json.dumps({"jobId": job.job_id, "jobOwner": job.account})

    def describe_signing_job(self: Any) -> str:
        return json.dumps(signer.job(self.path.rstrip("/").split("/")[-1]).describe())

    def list_signing_jobs(self: Any) -> str:
        q = {k: v[0] for k, v in self.querystring.items() if v}
        jobs = sorted(signer.jobs.values(), key=lambda j: j.created_at)
        for name, attribute in (("status", "status"), ("requestedBy", "requested_by")):
            if name in q:
                jobs = [j for j in jobs if getattr(j, attribute) == q[name]]
        if "platformId" in q:
            jobs = [j for j in jobs if j.profile.platform_id == q["platformId"]]
        if "isRevoked" in q:
            jobs = [j for j in jobs if (j.revocation is not None) == (q["isRevoked"].lower() == "true")]
        for name, before in (("signatureExpiresBefore", True), ("signatureExpiresAfter", False)):
            if name in q:
                bound = _timestamp(q[name])
                jobs = [
                    j for j in jobs if j.expires_at and ((j.expires_at < bound) if before else (j.expires_at > bound))
                ]
        start = int(q.get("nextToken", 0))
        size = int(q.get("maxResults", 25))
        page = jobs[start : start + size]
        out: dict[str, Any] = {"jobs": [j.summary() for j in page]}
        if start + size < len(jobs):
            out["nextToken"] = str(start + size)
        return json.dumps(out)

    def revoke_signature(self: Any) -> str:
        job = signer.job(self.path.rstrip("/").split("/")[-2])
        reason = json.loads(self.body or "{}").get("reason")
        if not reason:
            raise _error("ValidationException", "reason is required.")
        job.revocation = {
            "reason": reason,
            "revokedAt": datetime.now(UTC).timestamp(),
            "revokedBy": caller(self).display,
        }
        cloud.record({"kind": "signature-revoked", "job": job.job_id, "reason": reason})
        return "{}"

    def get_signing_profile(self: Any) -> str:
        name = self.path.split("/")[-1]
        if name not in self.signer_backend.signing_profiles:
            raise _error("ResourceNotFoundException", f"The signing profile {name} does not exist.", 404)
        return original_get_profile(self)

    SignerResponse.start_signing_job = start_signing_job
    SignerResponse.describe_signing_job = describe_signing_job
    SignerResponse.list_signing_jobs = list_signing_jobs
    SignerResponse.revoke_signature = revoke_signature
    SignerResponse.get_signing_profile = get_signing_profile


def _timestamp(value: str) -> datetime:
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except ValueError:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
