"""Test-side name for the threaded loopback server (the demo uses the same one)."""

from proxy.demo.threaded import ServerThread, free_port, serve

__all__ = ["ServerThread", "free_port", "serve"]
