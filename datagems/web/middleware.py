"""The one error middleware: every failure becomes ``{"error": ...}`` with its status.

- ``DatagemsError``: its ``.status`` and message; ``SchemaInvalid`` adds ``errors``,
  ``RateLimited`` sets ``Retry-After`` (and ``retryAfter`` in the body). Expected failures
  are logged at WARNING. A ``StoreError`` (CStore or R1FS failed) answers 503 with
  ``Retry-After`` and a fixed message: its own text names the store's internal address,
  which is for the log only, never for whoever asked (an unauthenticated sign-in too).
- aiohttp's ``HTTPException`` (404, 405, 413...) passes through as JSON (redirects as they
  are); a page request (not ``/api``) gets a small HTML page instead.
- anything else: ``logger.exception`` and 500 ``{"error": "internal error"}``.

Messages are shown to users and logged: by the error tree's rule they never hold a secret.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from datagems.errors import DatagemsError, RateLimited, SchemaInvalid, StoreError
from datagems.web.auth import Handler, wants_page

logger = logging.getLogger(__name__)
STORE_UNAVAILABLE = "the data store is not reachable right now; try again in a moment"
STORE_RETRY_AFTER_SECONDS = 5


def _error_response(
    request: web.Request,
    status: int,
    message: str,
    *,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    if wants_page(request) and request.method == "GET" and status != 401:
        from datagems.web.pages import page_context

        context = page_context(request, "error")
        context.update(status=status, message=message)
        response = aiohttp_jinja2.render_template("error.html", request, context, status=status)
    else:
        response = web.json_response({"error": message, **(extra or {})}, status=status)
    if headers:
        response.headers.update(headers)
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DatagemsError as exc:
        extra: dict[str, Any] = {}
        headers: dict[str, str] = {}
        if isinstance(exc, SchemaInvalid):
            extra["errors"] = exc.errors
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(exc.retry_after)
            extra["retryAfter"] = exc.retry_after
        public = exc.message
        if isinstance(exc, StoreError):
            public = STORE_UNAVAILABLE
            headers["Retry-After"] = str(STORE_RETRY_AFTER_SECONDS)
        level = (
            logging.ERROR
            if exc.status >= 500 and exc.status not in (502, 503)
            else (logging.WARNING)
        )
        logger.log(level, "%s %s -> %d %s", request.method, request.path, exc.status, exc)
        return _error_response(request, exc.status, public, extra=extra, headers=headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status >= 500:
            logger.error("%s %s -> %d", request.method, request.path, exc.status)
        elif exc.status != 404:
            logger.warning("%s %s -> %d %s", request.method, request.path, exc.status, exc.reason)
        message = exc.reason
        if exc.status == 413:
            message = "request body too large"
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return _error_response(request, exc.status, message, headers=headers)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        logger.exception("%s %s -> 500", request.method, request.path)
        return _error_response(request, 500, "internal error")
