"""Calls the proxy makes itself: run-step enrichment and the vector store sampler."""
