"""The stateless ingest stack: the verify function on the ingest event queue, the reconciler, the review of held
uploads, the producer roles of the trust registry and the alert topic."""

from __future__ import annotations

from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.constructs.concern import ComposedStack
from infra.constructs.functions import FunctionPlatform
from infra.constructs.ingest_resources import IngestResources
from infra.constructs.parameters import publish
from infra.constructs.producer_roles import ProducerRoles
from infra.constructs.reconciler import Reconciler
from infra.constructs.reviewer import Reviewer
from infra.constructs.verifier import Verifier
from infra.settings import ROOT, StageSettings
from infra.stacks.signing_stack import SigningStack
from infra.stacks.storage_stack import StorageStack
from mlvault.trust.producers import load_registry


class IngestStack(ComposedStack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StageSettings,
        storage: StorageStack,
        signing: SigningStack,
        **kwargs,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        registry = load_registry(ROOT / settings.trust_file)
        self.platform = FunctionPlatform(
            self, "Platform", settings=settings, data_key=storage.data_key, signing=signing.provider(self)
        )
        self.alerts = sns.Topic(
            self,
            "Alerts",
            display_name=f"mlvault {settings.stage} alerts",
            master_key=storage.data_key,
            enforce_ssl=True,
        )
        ingest = IngestResources.of(
            self, settings=settings, ledger=storage.ledger_table, queue=storage.ingest_queue, alerts=self.alerts
        )
        self.verify = Verifier(
            self,
            "Verifier",
            platform=self.platform,
            ingest=ingest,
            registry=registry,
        ).function
        self.reconcile = Reconciler(self, "Reconciler", platform=self.platform, ingest=ingest).function
        self.review = Reviewer(self, "Reviewer", platform=self.platform, ingest=ingest).function
        self.producer_roles = ProducerRoles(
            self, "Producers", settings=settings, producers=registry.producers, data_key=storage.data_key
        ).roles

        publish(
            self,
            settings,
            {
                "alert-topic": self.alerts.topic_arn,
                "review-function": self.review.function.function_name,
                "verify-function": self.verify.function.function_name,
                "reconcile-function": self.reconcile.function.function_name,
                **{f"producer-role/{p}": r.role_arn for p, r in self.producer_roles.items()},
            },
        )
