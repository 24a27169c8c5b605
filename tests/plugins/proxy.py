"""Fixtures for the proxy (owned by the proxy work)."""
