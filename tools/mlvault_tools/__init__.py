"""mlvault developer tooling: the CLI, the demo, benchmarks, samples and test keys. Never shipped to Lambda."""
