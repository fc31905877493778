"""Merchants: accounts, API keys, callback settings."""
