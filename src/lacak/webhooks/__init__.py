"""Outbound webhooks: the outbox dispatcher, its dialects, signatures and operations."""
