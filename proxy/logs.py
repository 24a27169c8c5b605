"""The one path every log line takes: credentials are scrubbed from the formatted message, the
exception text and the stack before any handler writes them.

Call sites still never format a request, its headers or an aiohttp exception's repr (that repr
carries the request's headers); `exception_summary` is what they log instead. The filter is the
net under them, for lines nobody wrote with a credential in mind (aiohttp's own loggers, a
traceback, a parser message quoting the bytes it refused).
"""

from __future__ import annotations

import logging
import re
import sys

REDACTED = "[redacted]"

# Each pattern keeps what names the secret and replaces the secret itself.
_PATTERNS = (
    # a credential field as a header line, a repr of a headers mapping, JSON or a query string
    (re.compile(r"""(?i)\b((?:proxy-)?authorization|(?:x-)?api[-_]?key|x-proxy-key|(?:set-)?cookie)"""
                r"""(['"]?\s*[:=]\s*b?['"]?)[^'"\r\n\\&]*"""), rf"\1\2{REDACTED}"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[\w.~+/=-]+"), rf"\1 {REDACTED}"),
    (re.compile(r"\bsk-[\w-]{6,}"), f"sk-{REDACTED}"),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def exception_summary(exc: BaseException) -> str:
    """One line about `exc` that is safe to log or to answer with: the first line of its message
    (aiohttp's parsers quote the offending bytes on the lines below, and its client errors carry
    the request's headers in their repr), redacted."""
    message = getattr(exc, "message", None)
    text = message if isinstance(message, str) else str(exc)
    first = text.strip().splitlines()[0] if text.strip() else ""
    return redact(first.rstrip(":"))


class RedactingFilter(logging.Filter):
    """Rewrites each record in place so every formatter downstream sees only redacted text."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def configure_logging(level: str | int, fmt: str = logging.BASIC_FORMAT) -> None:
    """Log to stderr at `level`, every line (the project's and its libraries') redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    logging.basicConfig(level=getattr(logging, level.upper()) if isinstance(level, str) else level,
                        format=fmt, handlers=[handler])
