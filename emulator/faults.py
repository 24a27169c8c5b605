"""Faults on demand: the `X-Emulator-Fault` request header (or the CLI's --fault default).

Grammar: comma- or semicolon-separated `name[=value]` items, e.g.
`status=429,retry_after=2`, `latency=250`, `reset_mid_stream=3`, `truncate`, `slow_body=50,first=1`."""

from __future__ import annotations

from dataclasses import dataclass

from emulator.errors import ApiError

HEADER = "X-Emulator-Fault"
_STATUS = {
    429: ("Rate limit reached for requests. Please try again in 1s.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


@dataclass(frozen=True)
class Fault:
    latency_ms: int = 0
    status: int | None = None
    retry_after: int = 1
    reset_after_events: int | None = None
    truncate: bool = False
    slow_body_ms: int = 0
    first: int | None = None  # only the first N attempts (x-stainless-retry-count < N) are faulted

    def applies(self, retry_count: int) -> bool:
        return self.first is None or retry_count < self.first

    def error(self) -> ApiError:
        assert self.status is not None
        message, kind, code = _STATUS.get(self.status, ("Emulated failure.", "server_error", None))
        headers = {}
        if self.status == 429:
            headers = {"retry-after": str(self.retry_after), "retry-after-ms": str(self.retry_after * 1000),
                       "x-ratelimit-remaining-requests": "0"}
        return ApiError(self.status, message, type=kind, code=code, headers=headers)


def parse(spec: str | None) -> Fault | None:
    if not spec or not spec.strip():
        return None
    values: dict[str, object] = {}
    for item in spec.replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        name, _, raw = item.partition("=")
        name = name.strip().lower()
        raw = raw.strip()
        try:
            if name in ("latency", "slow_headers"):
                values["latency_ms"] = int(values.get("latency_ms", 0)) + int(raw)
            elif name == "status":
                values["status"] = int(raw)
            elif name == "retry_after":
                values["retry_after"] = int(raw)
            elif name in ("reset_mid_stream", "reset"):
                values["reset_after_events"] = int(raw) if raw else 2
            elif name == "truncate":
                values["truncate"] = True
            elif name == "slow_body":
                values["slow_body_ms"] = int(raw)
            elif name == "first":
                values["first"] = int(raw)
            else:
                raise ValueError(name)
        except ValueError:
            raise ApiError(400, f"Invalid {HEADER} item: '{item}'.", param=HEADER, code="invalid_fault") from None
    return Fault(**values)  # type: ignore[arg-type]
