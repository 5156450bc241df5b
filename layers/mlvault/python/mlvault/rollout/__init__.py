"""Deploying a signed model: verified again, pinned to a serving version, promoted in canary steps."""
