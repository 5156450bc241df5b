"""mlvault's local cloud: the synthesized CDK app (cdk.out) provisioned onto a moto server on 127.0.0.1, with
Lambda handlers run from the code they were deployed with in local worker processes, every request authorized
as IAM would (`authz.py`), and moto's missing behaviours closed per service in `services/` (indexed in
`gaps.py`). Developer tooling: its own package, never shipped to Lambda,
importing nothing of mlvault."""

ACCOUNT_ID = "123456789012"  # moto's default account: a fake id, never a real one
