"""Trust anchors as reviewed files bundled with the code that uses them: the producer registry (trust/<stage>.json)."""
