"""Fixtures for the emulator (owned by the emulator work)."""
