"""mlvault's own rules for Lambda functions and layers, checked on the synthesized templates of the whole app
(code signing refers across stacks: the profile and the signer live in the signing stack):

- MLV-LAMBDA-CODE-SIGNING: every function has a code signing config backed by AWS Signer profiles (platform
  AWSLambda-SHA384-ECDSA) with the stage's policy, and its code comes from a signed-code custom resource
  (`Custom::MlvaultSignedCode`: Code.S3Bucket/S3Key/S3ObjectVersion = its Bucket/Key/Version) whose provider is
  the signer and whose profile is one the config trusts; every layer likewise. The one exception is the signer
  itself (it cannot sign itself before it exists): exactly one function marked with
  CODE_SIGNING_EXCEPTION_METADATA_KEY, alone in its stack, without layers, the provider of every signed-code
  resource.
- MLV-LAMBDA-FAILURE-DESTINATION, MLV-LAMBDA-STRUCTURED-LOGS: a DLQ or an on-failure destination; JSON logs.
- MLV-LAMBDA-SIZE: code plus layers unzip to less than Lambda's 250 MiB, measured on the assets of the cloud
  assembly (signed code is measured on the asset it was made from, plus the files the signer adds).
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from infra.policy.spec import (
    CODE_SIGNING_EXCEPTION_METADATA_KEY,
    CODE_SIGNING_EXCEPTION_SIGNER,
    SIGNED_CODE_ATTRIBUTES,
    SIGNED_CODE_RESOURCE_TYPE,
    SIGNING_PLATFORM,
)
from infra.policy.template_refs import References, Target, Violation, as_list, metadata, props, refers_to, resources

FUNCTION = "AWS::Lambda::Function"
LAYER_VERSION = "AWS::Lambda::LayerVersion"
CODE_SIGNING_CONFIG = "AWS::Lambda::CodeSigningConfig"
SIGNING_PROFILE = "AWS::Signer::SigningProfile"
EVENT_INVOKE_CONFIG = "AWS::Lambda::EventInvokeConfig"
# Lambda's hard limit on a function's code plus all its layers, unzipped: "250 MB", which Lambda enforces as
# "must be smaller than 262144000 bytes" (250 MiB).
LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024
SIGNING = "MLV-LAMBDA-CODE-SIGNING"


def _signers(templates: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The functions marked as the code signing exception (the signer), as (stack, logical id)."""
    return [
        (stack, fn_id)
        for stack, template in templates.items()
        for fn_id, fn in resources(template, FUNCTION)
        if CODE_SIGNING_EXCEPTION_METADATA_KEY in metadata(fn)
    ]


def check_functions(templates: Mapping[str, Mapping[str, Any]], policy: str) -> list[Violation]:
    """Every violation of the Lambda rules but the size limit, over all the app's templates."""
    refs = References(templates)
    signers = _signers(templates)
    signer = Target(*signers[0], "Arn") if len(signers) == 1 else None
    violations = list(_check_signer(templates, signers))
    for stack, template in templates.items():  # every layer, also one no function uses
        for layer_id, layer in resources(template, LAYER_VERSION):
            content = props(layer).get("Content")
            violations.extend(_check_signed(refs, stack, layer_id, "Content", content, _all_profiles(refs), signer))
    for stack, template in templates.items():
        invoke_configs = [props(r) for _, r in resources(template, EVENT_INVOKE_CONFIG)]
        for fn_id, fn in resources(template, FUNCTION):
            fn_props = props(fn)
            violations.extend(_check_failure_and_logs(stack, fn_id, fn_props, invoke_configs))
            if (stack, fn_id) in signers:
                continue
            found, trusted = _check_config(refs, stack, fn_id, fn_props, policy)
            violations.extend(found)
            violations.extend(_check_signed(refs, stack, fn_id, "Code", fn_props.get("Code"), trusted, signer))
            for layer in as_list(fn_props.get("Layers") or []):
                target = refs.target(stack, layer)
                if refs.resource_type(target) != LAYER_VERSION:
                    violations.append(
                        Violation(SIGNING, stack, fn_id, f"layer {layer!r} is not a signed layer of this app")
                    )
                    continue
                content = props(target.resource(templates)).get("Content")
                violations.extend(
                    _check_signed(refs, target.stack, target.logical_id, "Content", content, trusted, signer)
                )
    return list(dict.fromkeys(violations))  # a layer shared by several functions is reported once


def _check_signer(templates: Mapping[str, Mapping[str, Any]], signers: list[tuple[str, str]]) -> Iterator[Violation]:
    for stack, fn_id in signers:
        fn = templates[stack]["Resources"][fn_id]
        mark = metadata(fn)[CODE_SIGNING_EXCEPTION_METADATA_KEY]
        if mark != CODE_SIGNING_EXCEPTION_SIGNER:
            yield Violation(SIGNING, stack, fn_id, f"unknown code signing exception {mark!r}: only the signer is one")
        if len(signers) > 1:
            yield Violation(
                SIGNING,
                stack,
                fn_id,
                f"{len(signers)} functions are marked as the code signing exception "
                f"({', '.join('/'.join(s) for s in signers)}): only the signer may run unsigned code",
            )
        others = [k for k, _ in resources(templates[stack], FUNCTION) if k != fn_id]
        if others:
            yield Violation(SIGNING, stack, fn_id, f"the signer must be alone in its stack; found {others}")
        if props(fn).get("Layers"):
            yield Violation(SIGNING, stack, fn_id, "the signer runs unsigned code: it may have no layers")


def _check_config(
    refs: References, stack: str, fn_id: str, fn_props: Mapping[str, Any], policy: str
) -> tuple[list[Violation], set[Target]]:
    """The function's code signing config; the profiles it trusts."""
    found: list[Violation] = []
    config = refs.target(stack, fn_props.get("CodeSigningConfigArn"))
    if refs.resource_type(config) != CODE_SIGNING_CONFIG:
        found.append(
            Violation(SIGNING, stack, fn_id, "function needs a CodeSigningConfigArn referring to a code signing config")
        )
        return found, set()
    config_props = props(config.resource(refs.templates))
    arns = ((config_props.get("AllowedPublishers") or {}).get("SigningProfileVersionArns")) or []
    profiles = {refs.target(config.stack, arn) for arn in arns}
    trusted = {
        Target(p.stack, p.logical_id, None)
        for p in profiles
        if p
        and refs.resource_type(p) == SIGNING_PROFILE
        and props(p.resource(refs.templates)).get("PlatformId") == SIGNING_PLATFORM
    }
    if not arns or None in profiles or len(trusted) != len(profiles):
        found.append(
            Violation(
                SIGNING,
                stack,
                fn_id,
                f"code signing config {config.logical_id} must trust only AWS Signer profiles of this app "
                f"(platform {SIGNING_PLATFORM})",
            )
        )
    actual = (config_props.get("CodeSigningPolicies") or {}).get("UntrustedArtifactOnDeployment")
    if actual != policy:
        found.append(
            Violation(SIGNING, stack, fn_id, f"code signing policy must be the stage's {policy!r}, got {actual!r}")
        )
    return found, trusted


def _check_signed(
    refs: References,
    stack: str,
    logical_id: str,
    field: str,
    location: Any,
    trusted: set[Target],
    signer: Target | None,
) -> Iterator[Violation]:
    """A function's Code (or a layer's Content) is the output of one signed-code resource, signed by the signer
    with a profile the function's code signing config trusts."""
    location = location if isinstance(location, Mapping) else {}
    targets = {prop: refs.target(stack, location.get(prop)) for prop in SIGNED_CODE_ATTRIBUTES}
    resources_meant = {(t.stack, t.logical_id) for t in targets.values() if t}
    wanted = ", ".join(f"{field}.{p} = its {a}" for p, a in SIGNED_CODE_ATTRIBUTES.items())
    if (
        len(resources_meant) != 1
        or any(t is None or t.attribute != SIGNED_CODE_ATTRIBUTES[p] for p, t in targets.items())
        or refs.resource_type(targets["S3Key"]) != SIGNED_CODE_RESOURCE_TYPE
    ):
        yield Violation(
            SIGNING,
            stack,
            logical_id,
            f"{field} must come from a signed-code resource ({SIGNED_CODE_RESOURCE_TYPE}: {wanted})",
        )
        return
    resource = targets["S3Key"]
    cr = props(resource.resource(refs.templates))
    provider = refs.target(resource.stack, cr.get("ServiceToken"))
    if signer is None or provider != signer:
        yield Violation(
            SIGNING,
            stack,
            logical_id,
            f"signed-code resource {resource.logical_id} must be provided by the signer (the one function marked "
            f"'{CODE_SIGNING_EXCEPTION_METADATA_KEY}'), got ServiceToken {cr.get('ServiceToken')!r}",
        )
    profile = refs.target(resource.stack, cr.get("ProfileName"))
    if not profile or Target(profile.stack, profile.logical_id, None) not in trusted:
        yield Violation(
            SIGNING,
            stack,
            logical_id,
            f"signed-code resource {resource.logical_id} signs with {cr.get('ProfileName')!r}, not a profile the "
            "function's code signing config trusts",
        )


def _all_profiles(refs: References) -> set[Target]:
    return {
        Target(stack, pid, None)
        for stack, template in refs.templates.items()
        for pid, p in resources(template, SIGNING_PROFILE)
        if props(p).get("PlatformId") == SIGNING_PLATFORM
    }


def _check_failure_and_logs(
    stack: str, fn_id: str, fn_props: Mapping[str, Any], invoke_configs: list[Mapping[str, Any]]
) -> Iterator[Violation]:
    has_dlq = bool((fn_props.get("DeadLetterConfig") or {}).get("TargetArn"))
    has_destination = any(
        refers_to(c.get("FunctionName"), fn_id)
        and ((c.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        for c in invoke_configs
    )
    if not (has_dlq or has_destination):
        yield Violation(
            "MLV-LAMBDA-FAILURE-DESTINATION",
            stack,
            fn_id,
            "function needs a DeadLetterConfig or an on-failure destination",
        )
    log_format = (fn_props.get("LoggingConfig") or {}).get("LogFormat")
    if log_format != "JSON":
        yield Violation(
            "MLV-LAMBDA-STRUCTURED-LOGS",
            stack,
            fn_id,
            f"function must log in JSON (LoggingConfig.LogFormat), got {log_format!r}",
        )


# --- Lambda's unzipped size limit, measured on the assets of the cloud assembly ----------------------------


def assembly_assets(outdir: str | Path) -> dict[str, Path]:
    """Asset object key (as in Code.S3Key / Content.S3Key) -> its file or directory in the cloud assembly."""
    outdir = Path(outdir)
    manifest = json.loads((outdir / "manifest.json").read_text())
    found: dict[str, Path] = {}
    for artifact in manifest.get("artifacts", {}).values():
        if artifact.get("type") != "cdk:asset-manifest":
            continue
        files = json.loads((outdir / artifact["properties"]["file"]).read_text()).get("files", {})
        for entry in files.values():
            for destination in entry.get("destinations", {}).values():
                found[destination["objectKey"]] = outdir / entry["source"]["path"]
    return found


def unzipped_bytes(asset: Path) -> int:
    """What an asset occupies once Lambda unzips it: a directory's files, a zip's members, or a plain file."""
    if asset.is_dir():
        return sum(os.stat(os.path.join(root, name)).st_size for root, _, names in os.walk(asset) for name in names)
    if zipfile.is_zipfile(asset):
        with zipfile.ZipFile(asset) as archive:
            return sum(member.file_size for member in archive.infolist())
    return asset.stat().st_size


def _measure(refs: References, stack: str, location: Any, assets: Mapping[str, Path]) -> int | None:
    """Unzipped bytes of a Code / Content: an asset of the assembly, or a signed-code resource's source asset plus
    the documents the signer adds (their JSON as written here, tokens unresolved: an estimate of a few hundred
    bytes). None when it cannot be measured."""
    location = location if isinstance(location, Mapping) else {}
    key = location.get("S3Key")
    if isinstance(key, str):
        return unzipped_bytes(assets[key]) if key in assets else None
    target = refs.target(stack, key)
    if refs.resource_type(target) != SIGNED_CODE_RESOURCE_TYPE:
        return None
    cr = props(target.resource(refs.templates))
    source = cr.get("SourceKey")
    if not isinstance(source, str) or source not in assets:
        return None
    bundle = cr.get("Bundle") or {}
    return unzipped_bytes(assets[source]) + sum(len(json.dumps(doc)) + 128 for doc in bundle.values())


def _check_function_sizes(
    refs: References, stack: str, template: Mapping[str, Any], assets: Mapping[str, Path], limit: int
) -> Iterator[Violation]:
    mib = 1024 * 1024
    for fn_id, fn in resources(template, FUNCTION):
        fn_props = props(fn)
        code = fn_props.get("Code") or {}
        if "ImageUri" in code:
            continue  # container images have their own (10 GB) limit
        parts: list[tuple[str, int]] = []
        unknown: list[str] = []
        if isinstance(code.get("ZipFile"), str):
            parts.append(("inline code", len(code["ZipFile"].encode())))
        elif (size := _measure(refs, stack, code, assets)) is not None:
            parts.append(("code", size))
        else:
            unknown.append(f"code {code.get('S3Key')!r}")
        for layer in as_list(fn_props.get("Layers") or []):
            target = refs.target(stack, layer)
            content = props(target.resource(refs.templates)).get("Content") if target else None
            size = _measure(refs, target.stack, content, assets) if target else None
            if refs.resource_type(target) == LAYER_VERSION and size is not None:
                parts.append((target.logical_id, size))
            else:
                unknown.append(f"layer {layer!r}")
        if unknown:
            yield Violation(
                "MLV-LAMBDA-SIZE",
                stack,
                fn_id,
                f"cannot check the unzipped size against Lambda's {limit / mib:.0f} MiB limit: "
                f"{', '.join(unknown)} not an asset of this cloud assembly",
            )
        total = sum(size for _, size in parts)
        if total >= limit:
            detail = ", ".join(f"{name} {size / mib:.1f} MiB" for name, size in parts)
            yield Violation(
                "MLV-LAMBDA-SIZE",
                stack,
                fn_id,
                f"code and layers unzip to {total} bytes ({detail}); Lambda needs less than {limit} "
                f"({limit / mib:.0f} MiB)",
            )


def check_function_sizes(
    templates: Mapping[str, Mapping[str, Any]],
    assets: Mapping[str, Path],
    limit: int = LAMBDA_UNZIPPED_LIMIT_BYTES,
) -> list[Violation]:
    """Every function whose code and layers, unzipped, reach Lambda's limit (or cannot be measured)."""
    refs = References(templates)
    return [
        v for stack, template in templates.items() for v in _check_function_sizes(refs, stack, template, assets, limit)
    ]
