"""A small synchronous client of a replica's HTTP API, for the terminal commands.

Every failure is a ``ClientError`` carrying the exit code a script can rely on (see
``datagems.client`` for the table) and one line to show: the server's ``{"error"}`` text
when there is one. Credentials are a session token sent as ``Authorization: Bearer``; the
token is never part of a message.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

DEFAULT_TIMEOUT = 60.0  # drafting a schema is one LLM call, retried up to 3 times
EVENTS_READ_TIMEOUT = 45.0  # the server sends a keep-alive every 15 s

# exit codes scripts can rely on
EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_JOB_FAILED = 2
EXIT_USAGE = 3
EXIT_UNREACHABLE = 4
EXIT_INTERRUPTED = 130


class ClientError(Exception):
    """A failure with its exit code; ``str()`` is the one line shown to the user."""

    def __init__(
        self,
        message: str,
        exit_code: int = EXIT_USAGE,
        status: int | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.status = status
        self.detail = detail or message  # the server's own error text, when it answered

    def __str__(self) -> str:
        return self.message


def exit_code_for_status(status: int) -> int:
    """The exit code of an HTTP error answer: the caller's fault (3) or the server's (4)."""
    if status >= 500:
        return EXIT_UNREACHABLE
    return EXIT_USAGE


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]:
        return body["error"]
    reason = response.reason_phrase or "error"
    return f"HTTP {response.status_code} {reason}"


def error_from_response(response: httpx.Response) -> ClientError:
    status = response.status_code
    text = _error_text(response)
    if status == 401:
        message = (
            f"not signed in: the server refused the credentials ({text}); "
            "check --token / DATAGEMS_TOKEN, or sign in again"
        )
    elif status == 403:
        message = f"not allowed: {text}"
    elif status == 429:
        retry = response.headers.get("Retry-After")
        message = f"rate limited: {text}" + (f" (retry after {retry} s)" if retry else "")
    elif status >= 500:
        message = f"the server failed ({status}): {text}"
    else:
        message = text
    return ClientError(message, exit_code_for_status(status), status, text)


def _unreachable(url: str, exc: httpx.HTTPError) -> ClientError:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "unreachable"
    detail = str(exc) or exc.__class__.__name__
    return ClientError(f"the server at {url} is {kind}: {detail}", EXIT_UNREACHABLE)


def normalize_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url:
        raise ClientError("--url must not be empty")
    if "://" not in url:
        url = "http://" + url
    if not url.startswith(("http://", "https://")):
        raise ClientError(f"--url must be an http(s) address, not {url!r}")
    return url


def token_from_answer(answer: Any) -> str | None:
    """The token of a ``POST /api/auth/token`` answer (``{token, tokenType: "Bearer", ...}``)."""
    if not isinstance(answer, dict):
        return None
    token = answer.get("token")
    kind = answer.get("tokenType", "Bearer")
    if not isinstance(token, str) or not token or str(kind).lower() != "bearer":
        return None
    return token


@dataclass(frozen=True)
class Event:
    """One server-sent event."""

    event: str
    data: str


def parse_sse(lines: Iterator[str]) -> Iterator[Event]:
    """Server-sent events from the lines of a ``text/event-stream`` body."""
    event, data = "message", []
    for line in lines:
        if line == "":
            if data:
                yield Event(event, "\n".join(data))
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value or "message"
        elif name == "data":
            data.append(value)
    if data:
        yield Event(event, "\n".join(data))


class ApiClient:
    """The API of one replica, signed in with a session token (or not yet)."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = normalize_url(base_url)
        headers = {"Accept": "application/json", "User-Agent": "datagems-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
            follow_redirects=False,
        )
        self.account: dict[str, Any] = {}  # ``GET /api/auth/me`` once signed in
        self.signed_in: dict[str, Any] = {}  # the token answer's other fields (no token)

    # ------------------------------------------------------------------ plumbing

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_token(self, token: str) -> None:
        self._http.headers["Authorization"] = f"Bearer {token}"

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise _unreachable(self.base_url, exc) from None
        if response.status_code >= 400:
            raise error_from_response(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ClientError(
                f"the server at {self.base_url} did not answer JSON on {path}: "
                "is it a DataGems replica?",
                EXIT_UNREACHABLE,
            ) from None

    # ------------------------------------------------------------------ routes

    def login(self, username: str, password: str) -> str:
        """Sign in for an API token (``POST /api/auth/token``, no cookie); returns the
        token and uses it from now on."""
        try:
            answer = self._json(
                "POST", "/api/auth/token", json={"username": username, "password": password}
            )
        except ClientError as exc:
            if exc.status in (400, 401):
                raise ClientError(f"sign-in failed: {exc.detail}", EXIT_USAGE, exc.status) from None
            raise
        token = token_from_answer(answer)
        if not token:
            raise ClientError(
                "the server accepted the sign-in but returned no bearer token", EXIT_UNREACHABLE
            )
        self.set_token(token)
        self.signed_in = {k: v for k, v in answer.items() if k != "token"}
        return token

    def me(self) -> dict[str, Any]:
        return self._json("GET", "/api/auth/me")

    def draft_schema(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/api/tasks/schema", json=body)

    def confirm(self, draft_token: str, schema: dict[str, Any] | None = None) -> str:
        body: dict[str, Any] = {"draftToken": draft_token}
        if schema is not None:
            body["schema"] = schema
        answer = self._json("POST", "/api/tasks/confirm", json=body)
        job_id = answer.get("jobId") if isinstance(answer, dict) else None
        if not isinstance(job_id, str) or not job_id:
            raise ClientError("the server confirmed the draft but named no job", EXIT_UNREACHABLE)
        return job_id

    def list_jobs(self, *, everyone: bool = False) -> list[dict[str, Any]]:
        """The newest page of jobs (see ``list_page``)."""
        return self.list_page({"all": "true"} if everyone else {})[0]

    def list_page(self, params: dict[str, str]) -> tuple[list[dict[str, Any]], str | None]:
        """One page of ``GET /api/tasks`` (``limit``, ``cursor``, ``status``, ``q``, ``all``,
        ``owner``): its jobs and the cursor of the next page (``None``: the last page)."""
        answer = self._json("GET", "/api/tasks", params=params or None)
        jobs = answer.get("jobs") if isinstance(answer, dict) else answer
        cursor = answer.get("nextCursor") if isinstance(answer, dict) else None
        found = [job for job in jobs or [] if isinstance(job, dict)]
        return found, cursor if isinstance(cursor, str) and cursor else None

    def get_job(self, job_id: str) -> dict[str, Any]:
        """``{job, peers, details, cancel}``."""
        return self._json("GET", f"/api/tasks/{job_id}")

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", f"/api/tasks/{job_id}/cancel")

    def retry_failed(self, job_id: str) -> dict[str, Any]:
        """``{jobId, retryRound}``: every failed record of a finished job called once more."""
        return self._json("POST", f"/api/tasks/{job_id}/retry-failed")

    def logout(self) -> None:
        self._json("POST", "/api/auth/logout")

    def job_url(self, job_id: str) -> str:
        """The job's page in the dashboard."""
        return f"{self.base_url}/jobs/{job_id}"

    def events(self, job_id: str) -> Iterator[Event]:
        """The job's server-sent events until the server ends the stream.

        ``ClientError`` when the stream cannot be opened (its ``status`` is set for an HTTP
        error answer); a transport error while reading ends the iteration with
        ``ClientError(EXIT_UNREACHABLE)``.
        """
        timeout = httpx.Timeout(10.0, read=EVENTS_READ_TIMEOUT)
        headers = {"Accept": "text/event-stream"}
        try:
            with self._http.stream(
                "GET", f"/api/tasks/{job_id}/events", headers=headers, timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_from_response(response)
                kind = response.headers.get("content-type", "")
                if not kind.startswith("text/event-stream"):
                    raise ClientError(f"no event stream (content type {kind!r})", status=415)
                yield from parse_sse(response.iter_lines())
        except httpx.HTTPError as exc:
            raise _unreachable(self.base_url, exc) from None

    def download_export(self, job_id: str, fmt: str, destination: Path) -> int:
        """Stream the export to ``destination`` (atomically); returns the bytes written."""
        destination = Path(destination)
        directory = destination.parent if str(destination.parent) else Path(".")
        params = {"format": fmt, "partial": "true"}
        written = 0
        # created like any file the user makes (0666 less the umask), not mkstemp's 0600
        temporary = str(directory / f".{destination.name}.{secrets.token_hex(4)}.part")
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(handle, "wb") as out:
                try:
                    with self._http.stream(
                        "GET", f"/api/tasks/{job_id}/export", params=params
                    ) as response:
                        if response.status_code >= 400:
                            response.read()
                            raise error_from_response(response)
                        for chunk in response.iter_bytes():
                            out.write(chunk)
                            written += len(chunk)
                except httpx.HTTPError as exc:
                    raise _unreachable(self.base_url, exc) from None
            os.replace(temporary, destination)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return written
