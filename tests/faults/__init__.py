"""Fault and security suite (issue 9): one file per area, each with its own owner."""
