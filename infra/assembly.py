"""Builds the mlvault CDK app: context -> typed settings -> stacks -> policy checks."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import App, Environment, Tags

from infra.policy.nag import register_packs
from infra.settings import CONTRACTS_DIR, ConfigError, StageSettings, load_settings
from infra.stacks.ingest_stack import IngestStack
from infra.stacks.models_stack import ModelsStack
from infra.stacks.signing_stack import SigningStack
from infra.stacks.storage_stack import StorageStack
from mlvault.wiring import Tag


@dataclass(frozen=True)
class MlvaultApp:
    app: App
    settings: StageSettings
    storage: StorageStack
    signing: SigningStack
    ingest: IngestStack
    models: ModelsStack


def check_contracts() -> None:
    """Every data contract under contracts/ is valid: a typo fails synth, not the first upload."""
    from mlvault.contracts.schema import ContractError, load_all

    try:
        load_all(CONTRACTS_DIR)
    except ContractError as err:
        raise ConfigError(f"data contract: {err}") from None


def build(app: App) -> MlvaultApp:
    settings = load_settings(app.node)
    check_contracts()
    # Region explicit (assets are not pinned to a default region); the account stays the deploying one.
    env = Environment(region=settings.region)
    storage = StorageStack(
        app,
        f"{settings.prefix}-storage",
        settings=settings,
        env=env,
        description=f"mlvault {settings.stage}: stateful resources (RETAIN)",
    )
    signing = SigningStack(
        app,
        f"{settings.prefix}-signing",
        settings=settings,
        data_key=storage.data_key,
        pinned_keys=[storage.signing_key],
        env=env,
        description=f"mlvault {settings.stage}: the signing profile and the signer of every function's code",
    )
    ingest = IngestStack(
        app,
        f"{settings.prefix}-ingest",
        settings=settings,
        storage=storage,
        signing=signing,
        env=env,
        description=f"mlvault {settings.stage}: zero-trust ingest",
    )
    models = ModelsStack(
        app,
        f"{settings.prefix}-models",
        settings=settings,
        storage=storage,
        signing=signing,
        alerts=ingest.alerts,
        env=env,
        description=f"mlvault {settings.stage}: model pipeline, signing, serving",
    )
    Tags.of(app).add(Tag.STAGE, settings.stage)
    register_packs(app)
    return MlvaultApp(app=app, settings=settings, storage=storage, signing=signing, ingest=ingest, models=models)
