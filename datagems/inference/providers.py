"""Inference providers: one chat completion per call, over one keep-alive ``httpx.Client``.

Two wire forms:

- ``GatewayProvider``: a Ratio1 node's ``POST /create_chat_completion`` (the token is a
  body field ``authorization``; the answer is wrapped in the node envelope);
- ``OpenAIProvider``: an OpenAI-compatible ``POST /chat/completions`` (bearer key, model).

Both raise ``InferenceError`` with one of the named reasons:

==============================================  ==================  =========
what happened                                   reason              retryable
==============================================  ==================  =========
connect / read / protocol error                 ``transport``       yes
timeout                                         ``timeout``         yes
HTTP 429, ``result.status == "rate_limited"``   ``rate_limited``    yes
HTTP 5xx                                        ``http_<code>``     yes
other HTTP 4xx                                  ``http_<code>``     no
200 with ``result.error``                       ``provider_error``  no (``status: timeout``
                                                                    -> ``timeout``, yes)
200 whose envelope has no answer text           ``provider_error``  yes
an answer over ``max_answer_bytes``              ``provider_error``  no
==============================================  ==================  =========

Answers are read with a cap while they stream (``DATAGEN_MAX_ANSWER_BYTES``): a provider
that sends 150 MB costs at most the cap in memory, and the call fails as above.

Structured output: the form of ``response_format`` a server accepts is negotiated by
``datagems.inference.capabilities.Negotiation`` (first call a probe, refusals resent at
once in the next form, never counted as congestion); ``params`` carries a job's other
sampling parameters (``top_p``, penalties, ``stop``...); ``Completion.finish_reason`` is
the server's (``length``: cut at ``max_tokens``).

A provider's sync client is used by one thread at a time, its async client by one loop;
``close()`` releases its connections. With ``log_requests`` every call is logged at INFO
(method, URL, status, latency, body) with tokens and keys replaced by ``***``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import httpx
import orjson

from datagems.errors import InferenceError, UpstreamError
from datagems.inference.capabilities import (
    GATEWAY_FORMS,
    OPENAI_FORMS,
    Negotiation,
    is_refusal,
    response_format,
)

logger = logging.getLogger("datagems.inference")

INFERENCE_BASE_URL = "http://127.0.0.1:8765"
"""Default gateway base: a node's paired inference API is ``http://<host ip>:$API_PORT``."""
CREATE_CHAT_COMPLETION_PATH = "/create_chat_completion"
OPENAI_CHAT_PATH = "/chat/completions"

SECRET_KEYS = frozenset(
    {"authorization", "api_key", "apikey", "token", "access_token", "secret", "password", "key"}
)
MAX_LOGGED_BODY = 4000
_JSON = {"Content-Type": "application/json"}
MAX_DETAIL = 200
MAX_ANSWER_BYTES = 8 * 1024 * 1024
# sampling parameters a job may set (``inferenceParams``), as each server names them
OPENAI_PARAMS = frozenset(
    {
        "top_p",
        "top_k",
        "min_p",
        "frequency_penalty",
        "presence_penalty",
        "repeat_penalty",
        "stop",
        "logit_bias",
    }
)
GATEWAY_PARAMS = frozenset({"top_p", "repeat_penalty"})
GATEWAY_MIN_TOKENS, GATEWAY_MAX_TOKENS = 16, 4096


@dataclass(frozen=True, slots=True)
class Completion:
    """One answer: its text, token counts when the provider reports them, and latency.

    A server that sent the answer's JSON already parsed (the message content an object)
    gives it as ``data``, taken as is by ``value()``: never parsed again from ``text``
    (which is then its serialization, for logs and previews only)."""

    text: str
    tokens_in: int | None
    tokens_out: int | None
    latency_ms: float
    model: str | None
    finish_reason: str | None = None
    data: Any = None

    def value(self) -> Any:
        """The answer's JSON value (``extract_json`` of the text unless sent parsed)."""
        if self.data is not None:
            return self.data
        from datagems.inference.extract import extract_json

        return extract_json(self.text)


class Provider(Protocol):
    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        schema: dict | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Completion: ...

    async def acomplete(
        self,
        messages: list[dict[str, str]],
        *,
        schema: dict | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Completion: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...


def default_async_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    """The transport of the engine's hot path: httpx's API over aiohttp's connection pool.

    Measured on loopback (``BENCHMARKS.md``): httpx's own async pool spends its time on
    lock contention with tens of connections in flight, while aiohttp keeps them at a
    fraction of the CPU per call; ``httpx-aiohttp`` (by an httpx maintainer) lends us the
    latter behind the former, so errors, timeouts and ``MockTransport`` stay httpx's.
    """
    from httpx_aiohttp import AiohttpTransport

    return AiohttpTransport(limits=limits)


def redact(value: Any) -> Any:
    """A copy of a JSON value with every secret-looking field replaced by ``***``."""
    if isinstance(value, dict):
        return {
            key: (
                "***"
                if str(key).lower().replace("-", "_") in SECRET_KEYS and item
                else redact(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def _timed_out(exc: httpx.HTTPError) -> bool:
    """Did the call time out? ``httpx-aiohttp`` files every aiohttp connection error (a
    refused or reset connection) as ``ConnectTimeout``; its cause tells them apart."""
    if not isinstance(exc, httpx.TimeoutException):
        return False
    cause = exc.__cause__
    return not (isinstance(cause, aiohttp.ClientError) and not isinstance(cause, TimeoutError))


def _join(base_url: str, path: str) -> str:
    if not path:
        return base_url.rstrip("/")
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def _detail(response: httpx.Response) -> str:
    """A short, secret-free hint of why the server refused (its ``detail`` / ``error``)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    found: Any = None
    if isinstance(body, dict):
        found = body.get("detail") or body.get("error") or body.get("message")
        if isinstance(found, dict):
            found = found.get("error") or found.get("detail") or found.get("message")
        if isinstance(found, list) and found and isinstance(found[0], dict):
            found = found[0].get("msg")
    if not isinstance(found, str):
        return ""
    return ": " + (found if len(found) <= MAX_DETAIL else found[:MAX_DETAIL] + "…")


def _first(value: Any) -> Any:
    """Some gateway versions wrap ``TEXT_RESPONSE`` / ``FULL_OUTPUT`` in a one-element list."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _content_text(content: Any) -> str | dict | None:
    """The answer's text, or its JSON object when the server parsed it for us."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        text = "".join(p for p in parts if isinstance(p, str))
        return text or None
    if isinstance(content, dict):  # a server that parsed the JSON answer for us: as is
        return content
    return None


def _chat_text(full: Any) -> str | dict | None:
    if not isinstance(full, dict):
        return None
    choices = full.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message")
    if isinstance(message, dict):
        return _content_text(message.get("content"))
    return _content_text(choices[0].get("text"))


def _text_and_data(answer: str | dict) -> tuple[str, Any]:
    """``Completion``'s text and data: a parsed answer is kept, its text only for display."""
    if isinstance(answer, dict):
        return orjson.dumps(answer).decode(), answer
    return answer, None


def _finish_reason(full: Any) -> str | None:
    choices = full.get("choices") if isinstance(full, dict) else None
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        reason = choices[0].get("finish_reason")
        return reason if isinstance(reason, str) else None
    return None


def _too_big(kind: str, cap: int) -> InferenceError:
    return InferenceError(
        "provider_error",
        f"{kind} answer is larger than {cap // 1024} KiB: not read further",
        retryable=False,
    )


def _usage(full: Any) -> tuple[int | None, int | None]:
    usage = full.get("usage") if isinstance(full, dict) else None
    if not isinstance(usage, dict):
        return None, None
    tokens_in = usage.get("prompt_tokens")
    tokens_out = usage.get("completion_tokens")
    return (
        tokens_in if isinstance(tokens_in, int) else None,
        tokens_out if isinstance(tokens_out, int) else None,
    )


class _HttpProvider:
    """The shared part: the clients, the POST, timing, logging and HTTP error mapping.

    ``complete`` runs on the caller's thread over a keep-alive ``httpx.Client`` (the web
    layer's draft and preview calls); ``acomplete`` runs on an asyncio loop over one async
    transport (one connection pool) shared by every record of a job (the engine's hot
    path), made on first use in that loop. The hot path hands a prepared ``httpx.Request``
    straight to the transport: a POST to one fixed URL needs none of the client's URL
    merging, cookie jar or redirect handling, which cost a third of its CPU. Both paths
    build the same body and read the answer the same way.
    """

    kind = "inference"
    forms: tuple[str, ...] = OPENAI_FORMS

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        headers: dict[str, str] | None,
        log_requests: bool,
        transport: httpx.BaseTransport | None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 16,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        negotiation: Negotiation | None = None,
    ) -> None:
        self.url = url
        self.log_requests = log_requests
        self.max_answer_bytes = max_answer_bytes
        self.negotiation = negotiation or Negotiation(self.forms, endpoint=url, model=None)
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        self._headers = headers
        self._async_transport = async_transport
        self._max_connections = max_connections
        self._atransport: httpx.AsyncBaseTransport | None = None
        self._aurl = httpx.URL(url)
        self._aheaders = {**_JSON, "Accept": "application/json", **(headers or {})}
        self._client = httpx.Client(
            timeout=self._timeout,
            headers=headers,
            limits=httpx.Limits(
                max_connections=4, max_keepalive_connections=2, keepalive_expiry=60
            ),
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    async def aclose(self) -> None:
        """Close the async client (on the loop that made it) and the sync one."""
        if self._atransport is not None:
            transport, self._atransport = self._atransport, None
            await transport.aclose()
        self.close()

    def __enter__(self) -> _HttpProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _pool(self) -> httpx.AsyncBaseTransport:
        if self._atransport is None:
            limits = httpx.Limits(
                max_connections=self._max_connections,
                max_keepalive_connections=self._max_connections,
                keepalive_expiry=60,
            )
            self._atransport = self._async_transport or default_async_transport(limits)
        return self._atransport

    def _post(self, body: dict[str, Any]) -> tuple[Any, float]:
        """POST ``body``; returns the parsed 2xx JSON and the latency, or raises."""
        started = time.perf_counter()
        status: int | str = "error"
        try:
            with self._client.stream(
                "POST", self.url, content=orjson.dumps(body), headers=_JSON
            ) as streamed:
                self._check_length(streamed)
                chunks, size = [], 0
                for chunk in streamed.iter_bytes():
                    size += len(chunk)
                    if size > self.max_answer_bytes:
                        status = "too big"
                        raise _too_big(self.kind, self.max_answer_bytes)
                    chunks.append(chunk)
                status = streamed.status_code
            response = httpx.Response(status, content=b"".join(chunks))
        except httpx.HTTPError as exc:
            status = "timeout" if _timed_out(exc) else status
            raise self._transport_error(exc) from exc
        finally:
            latency_ms = (time.perf_counter() - started) * 1000
            if self.log_requests:
                self._log(body, status, latency_ms)
        return self._payload(response), latency_ms

    async def _apost(self, body: dict[str, Any]) -> tuple[Any, float]:
        """``_post`` on the async client."""
        started = time.perf_counter()
        status: int | str = "error"
        request = httpx.Request(
            "POST",
            self._aurl,
            content=orjson.dumps(body),
            headers=self._aheaders,
            extensions={"timeout": self._timeout.as_dict()},
        )
        try:
            streamed = await self._pool().handle_async_request(request)
            try:
                self._check_length(streamed)
                chunks, size = [], 0
                async for chunk in streamed.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_answer_bytes:
                        status = "too big"
                        raise _too_big(self.kind, self.max_answer_bytes)
                    chunks.append(chunk)
            finally:
                await streamed.aclose()
            status = streamed.status_code
            response = httpx.Response(status, content=b"".join(chunks))
        except httpx.HTTPError as exc:
            status = "timeout" if _timed_out(exc) else status
            raise self._transport_error(exc) from exc
        finally:
            latency_ms = (time.perf_counter() - started) * 1000
            if self.log_requests:
                self._log(body, status, latency_ms)
        return self._payload(response), latency_ms

    def _check_length(self, response: httpx.Response) -> None:
        """Refuse an answer whose declared length is over the cap before reading it."""
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_answer_bytes:
            raise _too_big(self.kind, self.max_answer_bytes)

    def _transport_error(self, exc: httpx.HTTPError) -> InferenceError:
        if _timed_out(exc):
            return InferenceError(
                "timeout", f"{self.kind} call timed out ({type(exc).__name__})", retryable=True
            )
        return InferenceError(
            "transport", f"{self.kind} call failed: {type(exc).__name__}", retryable=True
        )

    def _payload(self, response: httpx.Response) -> Any:
        """The parsed JSON of a 2xx answer, or the named error of any other."""
        code = response.status_code
        if code == 429:
            raise InferenceError(
                "rate_limited",
                f"{self.kind} rate limited (HTTP 429){_detail(response)}",
                retryable=True,
            )
        if code >= 300:
            raise InferenceError(
                f"http_{code}",
                f"{self.kind} answered HTTP {code}{_detail(response)}",
                retryable=code >= 500,
            )
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise InferenceError(
                "provider_error", f"{self.kind} answered a body that is not JSON", retryable=True
            ) from exc

    def body(
        self,
        messages: list[dict[str, str]],
        *,
        schema: dict | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        params: Mapping[str, Any] | None = None,
        form: str | None = None,
    ) -> dict[str, Any]:
        raise NotImplementedError

    def _answer(self, payload: Any, latency_ms: float) -> Completion:
        raise NotImplementedError

    def bodies(
        self,
        messages: list[dict[str, str]],
        *,
        schema: dict | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Callable[[str], dict[str, Any]]:
        """One question's request body in a given structured-output form (``complete``,
        ``acomplete`` and the benchmark's load generator all send these)."""
        return functools.partial(
            self.body,
            messages,
            schema=schema,
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
            params=params,
        )

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        schema: dict | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Completion:
        """One call; with a schema, in the form the server takes (probed the first time)."""
        body = self.bodies(
            messages,
            schema=schema,
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
            params=params,
        )

        def call(form: str) -> Completion:
            return self._answer(*self._post(body(form=form)))

        negotiation = self.negotiation
        if schema is None:
            return self._plain(call)
        if not negotiation.confirmed:
            with negotiation.lock:
                if not negotiation.confirmed:
                    return self._probe(call, schema)
        return call(negotiation.first_usable(schema))

    async def acomplete(
        self,
        messages: list[dict[str, str]],
        *,
        schema: dict | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Completion:
        """``complete`` on the async client: while the form is unknown, one call probes it
        and the others of this provider wait for its answer."""
        body = self.bodies(
            messages,
            schema=schema,
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
            params=params,
        )

        async def call(form: str) -> Completion:
            return self._answer(*await self._apost(body(form=form)))

        negotiation = self.negotiation
        if schema is None:
            try:
                return await call(negotiation.form)
            except InferenceError as exc:
                if negotiation.form == "none" or not is_refusal(exc):
                    raise
                return await call("none")
        if not negotiation.confirmed:
            async with negotiation.alock():
                if not negotiation.confirmed:
                    while True:
                        form = negotiation.first_usable(schema)
                        try:
                            completion = await call(form)
                        except InferenceError as exc:
                            if negotiation.refuse(form, exc):
                                continue
                            raise
                        negotiation.confirm(form)
                        return completion
        return await call(negotiation.first_usable(schema))

    def _plain(self, call: Any) -> Completion:
        """A call without a schema: ``json_object`` unless the server refuses it."""
        form = self.negotiation.form
        try:
            return call(form)
        except InferenceError as exc:
            if form == "none" or not is_refusal(exc):
                raise
            return call("none")

    def _probe(self, call: Any, schema: dict) -> Completion:
        negotiation = self.negotiation
        while True:
            form = negotiation.first_usable(schema)
            try:
                completion = call(form)
            except InferenceError as exc:
                if negotiation.refuse(form, exc):
                    continue
                raise
            negotiation.confirm(form)
            return completion

    def _log(self, body: dict[str, Any], status: int | str, latency_ms: float) -> None:
        text = orjson.dumps(redact(body)).decode()
        if len(text) > MAX_LOGGED_BODY:
            text = text[:MAX_LOGGED_BODY] + "…"
        logger.info("POST %s -> %s in %.1f ms body=%s", self.url, status, latency_ms, text)


class GatewayProvider(_HttpProvider):
    """A Ratio1 node's ``/create_chat_completion`` (or the mock gateway)."""

    kind = "gateway"
    forms = GATEWAY_FORMS

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 120.0,
        path: str = CREATE_CHAT_COMPLETION_PATH,
        log_requests: bool = False,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 16,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        negotiation: Negotiation | None = None,
    ) -> None:
        super().__init__(
            _join(base_url, path),
            timeout=timeout,
            headers=None,
            log_requests=log_requests,
            transport=transport,
            async_transport=async_transport,
            max_connections=max_connections,
            max_answer_bytes=max_answer_bytes,
            negotiation=negotiation,
        )
        self._token = token

    def body(
        self,
        messages: list[dict[str, str]],
        *,
        schema: dict | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        params: Mapping[str, Any] | None = None,
        form: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"messages": messages}
        if temperature is not None:
            body["temperature"] = temperature
        if max_tokens is not None:  # the gateway takes 16..4096
            body["max_tokens"] = min(GATEWAY_MAX_TOKENS, max(GATEWAY_MIN_TOKENS, max_tokens))
        for name, value in (params or {}).items():
            if name in GATEWAY_PARAMS:
                body[name] = value
        chosen = response_format(form or self.negotiation.first_usable(schema), schema)
        if chosen is not None:
            body["response_format"] = chosen
        body["metadata"] = {"seed": seed} if seed is not None else {}
        if self._token:
            body["authorization"] = self._token
        return body

    def _answer(self, payload: Any, latency_ms: float) -> Completion:
        result = payload.get("result") if isinstance(payload, dict) else None
        if not isinstance(result, dict):
            raise InferenceError(
                "provider_error", "gateway answer has no result object", retryable=True
            )
        status = result.get("status")
        error = result.get("error")
        if status == "rate_limited":
            raise InferenceError(
                "rate_limited", f"gateway rate limited: {_clip(error)}", retryable=True
            )
        if error:
            if status == "timeout":
                raise InferenceError(
                    "timeout", f"gateway timed out: {_clip(error)}", retryable=True
                )
            raise InferenceError(
                "provider_error",
                f"gateway error{f' ({status})' if status else ''}: {_clip(error)}",
                retryable=False,
            )
        full = _first(result.get("FULL_OUTPUT"))
        text = _chat_text(full)
        if text is None:
            text = _content_text(_first(result.get("TEXT_RESPONSE")))
        if text is None:
            raise InferenceError("provider_error", "gateway answer carries no text", retryable=True)
        tokens_in, tokens_out = _usage(full)
        model = result.get("MODEL_NAME") or (full.get("model") if isinstance(full, dict) else None)
        text, data = _text_and_data(text)
        return Completion(
            text=text,
            data=data,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            latency_ms=latency_ms,
            model=model if isinstance(model, str) else None,
            finish_reason=_finish_reason(full),
        )


class OpenAIProvider(_HttpProvider):
    """An OpenAI-compatible ``/chat/completions`` with a bearer key and a model."""

    kind = "provider"

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        model: str | None,
        path: str = OPENAI_CHAT_PATH,
        timeout: float = 120.0,
        log_requests: bool = False,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 16,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        negotiation: Negotiation | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        super().__init__(
            _join(base_url, path),
            timeout=timeout,
            headers=headers,
            log_requests=log_requests,
            transport=transport,
            async_transport=async_transport,
            max_connections=max_connections,
            max_answer_bytes=max_answer_bytes,
            negotiation=negotiation,
        )
        self.model = model

    def body(
        self,
        messages: list[dict[str, str]],
        *,
        schema: dict | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        seed: int | None = None,
        params: Mapping[str, Any] | None = None,
        form: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.model:
            body["model"] = self.model
        body["messages"] = messages
        if temperature is not None:
            body["temperature"] = temperature
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if seed is not None:
            body["seed"] = seed
        for name, value in (params or {}).items():
            if name in OPENAI_PARAMS:
                body[name] = value
        chosen = response_format(form or self.negotiation.first_usable(schema), schema)
        if chosen is not None:
            body["response_format"] = chosen
        return body

    def _answer(self, payload: Any, latency_ms: float) -> Completion:
        if not isinstance(payload, dict):
            raise InferenceError(
                "provider_error", "provider answer is not an object", retryable=True
            )
        error = payload.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else error
            code = error.get("code") if isinstance(error, dict) else None
            if code in ("rate_limited", "rate_limit_exceeded", 429):
                raise InferenceError(
                    "rate_limited", f"provider rate limited: {_clip(message)}", retryable=True
                )
            raise InferenceError(
                "provider_error", f"provider error: {_clip(message)}", retryable=False
            )
        text = _chat_text(payload)
        if text is None:
            raise InferenceError(
                "provider_error", "provider answer carries no text", retryable=True
            )
        tokens_in, tokens_out = _usage(payload)
        model = payload.get("model")
        text, data = _text_and_data(text)
        return Completion(
            text=text,
            data=data,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            latency_ms=latency_ms,
            model=model if isinstance(model, str) else self.model,
            finish_reason=_finish_reason(payload),
        )


def _clip(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode() if value else ""
    return text if len(text) <= MAX_DETAIL else text[:MAX_DETAIL] + "…"


def list_models(
    base_url: str,
    api_key: str | None,
    *,
    timeout: float = 15.0,
    transport: httpx.BaseTransport | None = None,
) -> list[str]:
    """The model ids of an OpenAI-compatible provider (``GET {base}/models``), sorted.

    Raises ``UpstreamError`` (never carrying the key) on a transport error, a non-2xx
    answer or a body that is not a model list.
    """
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    url = _join(base_url, "/models")
    try:
        with httpx.Client(timeout=timeout, transport=transport, follow_redirects=False) as client:
            response = client.get(url, headers=headers)
    except httpx.TimeoutException as exc:
        raise UpstreamError("the provider did not answer in time") from exc
    except httpx.HTTPError as exc:
        raise UpstreamError(f"could not reach the provider ({type(exc).__name__})") from exc
    if not response.is_success:
        raise UpstreamError(f"the provider answered HTTP {response.status_code}{_detail(response)}")
    try:
        payload = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError("the provider's model list is not JSON") from exc
    items = payload.get("data", payload.get("models")) if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        raise UpstreamError("the provider's answer is not a model list")
    names: set[str] = set()
    for item in items:
        if isinstance(item, str):
            names.add(item)
        elif isinstance(item, dict):
            name = item.get("id") or item.get("name")
            if isinstance(name, str):
                names.add(name)
    return sorted(names)
