"""The one error tree of DataGems.

Every failure we raise on purpose is a ``DatagemsError``; each class carries the HTTP
status the web middleware answers with, so a handler never maps errors by hand::

    DatagemsError (500)
    ├── SettingsError            a bad environment variable; the process stops at start
    ├── BadRequest (400)         malformed or out-of-bounds input
    │   └── SchemaInvalid (400)  a JSON Schema that is not a valid 2020-12 schema
    ├── Unauthorized (401)       no valid session
    ├── Forbidden (403)          signed in, but not allowed (role, origin)
    ├── NotFound (404)           unknown, or not the caller's
    ├── Conflict (409)           already exists
    ├── PayloadTooLarge (413)
    ├── RateLimited (429)        carries ``retry_after`` seconds
    ├── UpstreamError (502)      a provider (LLM, SMTP) answered wrongly
    ├── ServiceUnavailable (503) a dependency is not configured or not reachable
    │   └── StoreError (503)     CStore / R1FS failed
    │       ├── StoreUnavailable     transport error, timeout, 5xx: worth retrying
    │       ├── WriteNotConfirmed    the node answered ``result: false``
    │       └── StoreRejected        the node refused the request (4xx, ``result.error``)
    └── InferenceError (502)     one inference call failed; ``reason`` names why
                                 (transport, http_<code>, provider_error, invalid_json,
                                 schema_violation, timeout, rate_limited)

Raise with ``from`` the cause. Messages are shown to users: never put a secret in one.
"""

from __future__ import annotations


class DatagemsError(Exception):
    """Base of every error DataGems raises on purpose."""

    status: int = 500

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message or self.__class__.__name__

    def __str__(self) -> str:
        return self.message


class SettingsError(DatagemsError):
    """A configuration value is wrong; the message names the variable."""


class BadRequest(DatagemsError):
    status = 400


class SchemaInvalid(BadRequest):
    """A schema failed the 2020-12 meta-schema; ``errors`` lists ``{path, message}``."""

    def __init__(self, message: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class Unauthorized(DatagemsError):
    status = 401


class Forbidden(DatagemsError):
    status = 403


class NotFound(DatagemsError):
    status = 404


class Conflict(DatagemsError):
    status = 409


class PayloadTooLarge(DatagemsError):
    status = 413


class RateLimited(DatagemsError):
    status = 429

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after + 0.999))


class UpstreamError(DatagemsError):
    status = 502


class ServiceUnavailable(DatagemsError):
    status = 503


class StoreError(ServiceUnavailable):
    """CStore or R1FS did not do what was asked."""


class StoreUnavailable(StoreError):
    """Transport error, timeout or 5xx: the store may come back."""


class WriteNotConfirmed(StoreError):
    """The node answered ``result: false``: written locally, not confirmed by a peer."""


class StoreRejected(StoreError):
    """The node refused the request (4xx or ``result.error``): retrying will not help."""


class InferenceError(DatagemsError):
    """One inference call failed. ``reason`` is one of the named failure reasons."""

    status = 502

    def __init__(self, reason: str, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.retryable = retryable
