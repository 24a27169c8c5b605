"""Assistants API parsing: routes, incremental SSE decoding, JSON -> facts (pure functions)."""
