"""Automated rollback: serving alarms and key revocations take serving back to the last verified good model."""
