"""assistants-audit: a transparent observability and cost-audit proxy for the OpenAI Assistants API."""

__version__ = "0.1.0"
