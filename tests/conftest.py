"""Shared fixtures. Area-specific fixtures live in tests/plugins/*.py (one owner each)."""

import os
import sys

# Never let a test reach a real OpenAI host by accident.
os.environ.pop("OPENAI_API_KEY", None)
os.environ.pop("OPENAI_BASE_URL", None)
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))

pytest_plugins = [
    "tests.plugins.emulator",
    "tests.plugins.proxy",
    "tests.plugins.otlp",
]
