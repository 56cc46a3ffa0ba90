"""Completion hooks: events delivered to webhooks and commands."""
