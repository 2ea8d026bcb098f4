"""The one error tree: every failure a client can see, rendered per protocol by the api layer.

    FaregateError                 status  type
    ├── BadRequest                400     invalid_request_error
    ├── Unauthorized              401     authentication_error
    ├── InsufficientBalance       402     insufficient_balance
    ├── PermissionDenied          403     permission_error
    ├── NotFound                  404     not_found_error
    ├── MethodNotAllowed          405     invalid_request_error
    ├── UpstreamTimeout           408     timeout_error
    ├── Conflict                  409     invalid_request_error
    ├── PayloadTooLarge           413     invalid_request_error
    ├── ValidationFailed          422     invalid_request_error
    ├── RateLimited               429     rate_limit_error
    ├── InternalError             500     internal_server_error
    ├── UpstreamFailed            502     upstream_error
    └── ServiceUnavailable        503     service_unavailable_error

Upstream failures carry a `FailureClass` that decides retry and cooldown,
kept apart from the status the client sees.
"""

from __future__ import annotations

import enum


class FailureClass(enum.Enum):
    """Why an upstream call failed; decides what the gateway does next."""

    CALLER = "caller"  # the request itself is wrong: return it, never retry
    RATE_LIMIT = "rate_limit"  # upstream 429: retry elsewhere, cool down
    TRANSIENT = "transient"  # 5xx, reset connection: retry elsewhere
    TIMEOUT = "timeout"  # no answer in time: retry elsewhere
    REFUSED = "refused"  # upstream refused this one request (403 on the model, policy)
    CREDENTIAL = "credential"  # the provider says the key itself is invalid: once confirmed,
    # on several requests, that key is set aside
    QUOTA = "quota"  # upstream account out of quota: disable until reset
    TLS = "tls"  # the provider's TLS certificate or handshake refused: elsewhere, not again


class FaregateError(Exception):
    """Base of every error the gateway reports to a client."""

    status = 500
    type = "internal_server_error"
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.retry_after = retry_after
        self.headers: dict[str, str] = {}


class BadRequest(FaregateError):
    status = 400
    type = "invalid_request_error"
    code = "bad_request"


class PromptInjectionDetected(BadRequest):
    code = "prompt_injection_detected"


class Unauthorized(FaregateError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class InsufficientBalance(FaregateError):
    status = 402
    type = "insufficient_balance"
    code = "insufficient_balance"


class PermissionDenied(FaregateError):
    status = 403
    type = "permission_error"
    code = "model_not_allowed"


class NotFound(FaregateError):
    status = 404
    type = "not_found_error"
    code = "not_found"


class MethodNotAllowed(FaregateError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class Conflict(FaregateError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class UpstreamTimeout(FaregateError):
    status = 408
    type = "timeout_error"
    code = "provider_timeout"


class PayloadTooLarge(FaregateError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class ValidationFailed(FaregateError):
    status = 422
    type = "invalid_request_error"
    code = "validation_error"


class RateLimited(FaregateError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class InternalError(FaregateError):
    status = 500
    type = "internal_server_error"
    code = "internal_error"


class UpstreamFailed(FaregateError):
    status = 502
    type = "upstream_error"
    code = "provider_error"


class ServiceUnavailable(FaregateError):
    status = 503
    type = "service_unavailable_error"
    code = "service_unavailable"


class UpstreamError(Exception):
    """A failed upstream call, classified once where it was observed."""

    def __init__(
        self,
        failure: FailureClass,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        body: bytes | None = None,
    ) -> None:
        super().__init__(message)
        self.failure = failure
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.body = body

    def to_client(self) -> FaregateError:
        """The error a client sees when nothing else can serve the request."""
        retry = None if self.retry_after is None else max(1, round(self.retry_after))
        match self.failure:
            case FailureClass.CALLER:
                return BadRequest(self.message, code="upstream_rejected_request")
            case FailureClass.REFUSED:
                return PermissionDenied(
                    f"The provider refused this request: {self.message}",
                    code="upstream_refused_request",
                )
            case FailureClass.RATE_LIMIT:
                return RateLimited(
                    "The provider is rate limiting this model; retry later.",
                    code="provider_rate_limited",
                    retry_after=retry or 1,
                )
            case FailureClass.TIMEOUT:
                return UpstreamTimeout("The provider did not answer in time.")
            case FailureClass.CREDENTIAL | FailureClass.QUOTA:
                return ServiceUnavailable(
                    "No provider is available for this model right now.",
                    code="no_provider_available",
                    retry_after=retry or 30,
                )
            case FailureClass.TRANSIENT | FailureClass.TLS if self.status is None:
                return ServiceUnavailable(
                    "The provider could not be reached.",
                    code="no_provider_available",
                    retry_after=retry or 5,
                )
            case _:
                return UpstreamFailed(f"The provider returned an error: {self.message}")

    def to_client_mid_stream(self) -> FaregateError:
        """The error event that ends a stream the client has already started receiving."""
        if self.failure is FailureClass.TIMEOUT:
            return UpstreamTimeout("The provider stopped sending mid-stream.")
        return UpstreamFailed(
            f"The provider's stream broke off: {self.message}", code="stream_interrupted"
        )
