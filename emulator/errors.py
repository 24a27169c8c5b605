"""OpenAI-shaped errors: `{"error": {"message", "type", "param", "code"}}`."""

from __future__ import annotations


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def not_found(kind: str, object_id: str) -> ApiError:
    return ApiError(404, f"No {kind} found with id '{object_id}'.")


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def missing(param: str) -> ApiError:
    return ApiError(400, f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


def unknown_parameter(param: str) -> ApiError:
    return ApiError(400, f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter")


def invalid_url(method: str, path: str) -> ApiError:
    return ApiError(404, f"Invalid URL ({method} {path})")


def missing_beta() -> ApiError:
    return ApiError(
        400,
        "You must provide the 'OpenAI-Beta' header to access the Assistants API. "
        "Please try again by setting the header 'OpenAI-Beta: assistants=v2'.",
        code="invalid_beta",
    )


def missing_key() -> ApiError:
    return ApiError(
        401,
        "You didn't provide an API key. You need to provide your API key in an Authorization header "
        "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
    )


def invalid_key(key: str) -> ApiError:
    shown = key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 8 else "****"
    return ApiError(401, f"Incorrect API key provided: {shown}.", code="invalid_api_key")


def missing_bearer_token() -> ApiError:
    """Foundry projects take an Entra ID token only (no api-key)."""
    return ApiError(
        401,
        "Access denied due to missing or invalid authentication. Provide a Microsoft Entra ID token "
        "in an Authorization header using Bearer auth (i.e. Authorization: Bearer TOKEN).",
        code="Unauthorized",
    )


def missing_api_version() -> ApiError:
    return ApiError(400, "The api-version query parameter (?api-version=) is required for all requests.",
                    param="api-version", code="MissingApiVersionParameter")


def unsupported_api_version(value: str, supported: tuple[str, ...]) -> ApiError:
    return ApiError(400, f"The requested api-version '{value}' is not supported. "
                         f"Supported api-versions are: {', '.join(supported)}.",
                    param="api-version", code="UnsupportedApiVersion")
