"""Powertools singletons, created once per process (GUIDE.md section 4)."""

from aws_lambda_powertools import Logger

logger = Logger()
