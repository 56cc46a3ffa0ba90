"""Completion events from EventBridge through SQS: hints that make a job due at once."""
