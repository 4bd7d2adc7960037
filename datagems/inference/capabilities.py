"""Which structured-output form a server accepts: learned by the first call, remembered.

Servers differ in how they take a schema for constrained decoding:

======================  ===============================================  =================
form                    ``response_format``                              seen on
======================  ===============================================  =================
``json_schema_strict``  ``{"type": "json_schema", "json_schema":         OpenAI, vLLM
                        {"name", "strict": true, "schema"}}``
``json_schema``         the same without ``strict``                      vLLM, llama.cpp
``json_object_schema``  ``{"type": "json_object", "schema": S}``         llama-cpp-python,
                                                                         the Ratio1 gateway
``json_object``         ``{"type": "json_object"}`` (the schema is only  most
                        in the prompt)
``none``                no ``response_format``                           any
======================  ===============================================  =================

A ``Negotiation`` holds a provider's forms in order of preference and the one in use. Until
a form has been answered 2xx once (or was remembered), the first schema call is a probe:
other calls wait for it (one call per server, not one per record, pays for a refusal). A
refusal of ``response_format`` (a 4xx, or a 5xx whose detail names it) is a capability
answer, never congestion: the call is resent at once in the next form. A refusal of the
format's type itself (``Input should be 'text' or 'json_object'``, "not supported")
refuses the whole family (``json_schema`` with or without ``strict``); any other (a
schema that ``strict`` mode does not take) moves to the next form.
What was learned goes to ``datagen:provider-caps`` (one field per endpoint and model,
the same answer from every replica, so a lost update loses nothing) and is shown in
settings.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from datagems.errors import InferenceError, StoreError
from datagems.models import WireModel, now_iso

logger = logging.getLogger(__name__)

PROVIDER_CAPS = "datagen:provider-caps"
OPENAI_FORMS = ("json_schema_strict", "json_schema", "json_object_schema", "json_object", "none")
GATEWAY_FORMS = ("json_object_schema", "json_schema", "json_object", "none")
LABELS = {
    "json_schema_strict": "json_schema (strict)",
    "json_schema": "json_schema",
    "json_object_schema": "json_object with schema",
    "json_object": "json_object (schema in the prompt only)",
    "none": "none (schema in the prompt only)",
}
_REFUSAL_WORDS = ("response_format", "json_schema", "json_object", "schema", "grammar", "format")
_REFUSAL_CODES = frozenset({"http_400", "http_422", "http_501"})  # with a named detail


class Capability(WireModel):
    """What one endpoint (base URL + path + model) was found to accept."""

    endpoint: str = ""  # base URL + path, no key
    model: str | None = None
    form: str  # the structured-output form in use
    refused: list[str] = []  # forms it refused, with why: "json_schema: HTTP 500 ..."
    learned_at: str | None = None
    in_flight: int | None = None  # the in-flight level the last job on it ended at

    @property
    def label(self) -> str:
        return LABELS.get(self.form, self.form)


def endpoint_of(base_url: str, path: str) -> str:
    """The URL a provider posts to (base URL + path), as capabilities are keyed by."""
    path = path or "/chat/completions"
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def endpoint_key(url: str, model: str | None) -> str:
    """The CStore field of an endpoint: a digest of the URL and model (no key in it)."""
    return hashlib.sha256(f"{url}\n{model or ''}".encode()).hexdigest()[:32]


class CapabilitiesRepo:
    """``datagen:provider-caps`` (ours): endpoint digest -> ``Capability``."""

    def __init__(self, cstore: Any) -> None:
        self.cstore = cstore

    def get(self, key: str) -> Capability | None:
        try:
            value = self.cstore.hget(PROVIDER_CAPS, key)
        except StoreError as exc:
            logger.warning("provider capabilities not readable: %s", exc)
            return None
        if not isinstance(value, dict):
            return None
        try:
            return Capability.model_validate(value)
        except ValueError:
            return None

    def put(self, key: str, capability: Capability) -> None:
        try:
            self.cstore.hset(PROVIDER_CAPS, key, capability.wire())
        except StoreError as exc:  # learned again at the next first use
            logger.warning("provider capabilities not saved: %s", exc)


def strict_ready(schema: dict[str, Any]) -> bool:
    """Can ``strict`` structured output take this schema? (OpenAI's rules: every object
    lists all its properties as required and closes ``additionalProperties``.)"""
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        properties = node.get("properties")
        if isinstance(properties, dict):
            if node.get("additionalProperties") is not False:
                return False
            if set(node.get("required") or ()) != set(properties):
                return False
        for key, value in node.items():
            if key not in ("enum", "const", "examples", "default"):
                stack.append(value)
    return True


def response_format(form: str, schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``response_format`` of ``form`` (``None``: send none)."""
    if schema is None:
        return None if form == "none" else {"type": "json_object"}
    if form == "json_schema_strict":
        return {
            "type": "json_schema",
            "json_schema": {"name": "record", "strict": True, "schema": schema},
        }
    if form == "json_schema":
        return {"type": "json_schema", "json_schema": {"name": "record", "schema": schema}}
    if form == "json_object_schema":
        return {"type": "json_object", "schema": schema}
    if form == "json_object":
        return {"type": "json_object"}
    return None


def _family(form: str) -> str:
    return "json_schema" if form.startswith("json_schema") else form


_TYPE_REFUSALS = ("literal", "input should be", "not supported", "unsupported", "invalid type")


def refuses_type(exc: InferenceError) -> bool:
    """Does the refusal say the format's ``type`` itself is not taken (so ``json_schema``
    without ``strict`` would be refused too), rather than something about this schema?"""
    text = exc.message.lower()
    return "strict" not in text and any(word in text for word in _TYPE_REFUSALS)


def is_refusal(exc: InferenceError) -> bool:
    """Could this error be the server refusing the ``response_format`` it was sent? A 4xx
    or 5xx (or a gateway's error) whose detail names the format or the schema: a model
    that does not exist or a context too long is not a refusal of the form."""
    if not (
        exc.reason in _REFUSAL_CODES
        or exc.reason.startswith("http_5")
        or exc.reason == "provider_error"
    ):
        return False
    text = exc.message.lower()
    return any(word in text for word in _REFUSAL_WORDS)


def _one_line(text: str) -> str:
    """A server's message on one line (it goes to a log and to the settings page)."""
    return " ".join(text.split())


class Negotiation:
    """The structured-output form of one provider: in use, refused, being probed."""

    def __init__(
        self,
        forms: tuple[str, ...],
        *,
        endpoint: str,
        model: str | None,
        known: Capability | None = None,
        on_learned: Callable[[Capability], None] | None = None,
    ) -> None:
        self.forms = forms
        self.endpoint = endpoint
        self.model = model
        self.on_learned = on_learned
        self.refused: list[str] = list(known.refused) if known else []
        self.known_in_flight = known.in_flight if known else None
        self._learned: Capability | None = known if known and known.form in forms else None
        self.index = forms.index(known.form) if known and known.form in forms else 0
        self.confirmed = known is not None and known.form in forms
        self.extra_calls = 0  # calls spent on refused forms (this provider's life)
        self._alock: asyncio.Lock | None = None
        self._lock = threading.Lock()

    @property
    def form(self) -> str:
        return self.forms[self.index]

    def usable(self, form: str, schema: dict[str, Any] | None) -> bool:
        return form != "json_schema_strict" or (schema is not None and strict_ready(schema))

    def first_usable(self, schema: dict[str, Any] | None) -> str:
        """The form to send: the current one, skipping ``strict`` when the schema is not
        strict-ready (it is not a refusal: the next schema may be)."""
        index = self.index
        while index < len(self.forms) - 1 and not self.usable(self.forms[index], schema):
            index += 1
        return self.forms[index]

    def refuse(self, form: str, exc: InferenceError) -> bool:
        """``form`` was refused by ``exc``: move past it (past its family, unless the
        refusal named ``strict``). False when the error is not a refusal (nothing changes)
        or when no form is left (then every form failed alike: the error was not about the
        form, and the next call starts over)."""
        if self.confirmed or not is_refusal(exc) or form not in self.forms:
            return False
        self.extra_calls += 1
        why = _one_line(exc.message)
        self.refused.append(f"{form}: {why}"[:200])
        logger.warning(
            "%s refused response_format %s (%s): trying the next form", self.endpoint, form, why
        )
        index = self.forms.index(form) + 1
        if refuses_type(exc):
            while index < len(self.forms) and _family(self.forms[index]) == _family(form):
                index += 1
        if index >= len(self.forms):
            self.index = 0
            self.refused.clear()
            return False
        self.index = index
        return True

    def confirm(self, form: str) -> None:
        """``form`` was answered 2xx: it is the form of this server from now on."""
        if self.confirmed:
            return
        self.index = self.forms.index(form)
        self.confirmed = True
        capability = Capability(
            endpoint=self.endpoint,
            model=self.model,
            form=form,
            refused=self.refused,
            learned_at=now_iso(),
            in_flight=self.known_in_flight,
        )
        logger.info("%s takes structured output as %s", self.endpoint, capability.label)
        self._remember(capability)

    def remember_in_flight(self, level: int) -> None:
        """The in-flight level a job ended at: the next job on this server starts there."""
        if self._learned is None or self._learned.in_flight == level:
            return
        self.known_in_flight = level
        self._remember(self._learned.model_copy(update={"in_flight": level}))

    def _remember(self, capability: Capability) -> None:
        self._learned = capability
        if self.on_learned is not None:
            try:
                self.on_learned(capability)
            except Exception:
                logger.exception("could not remember the capability of %s", self.endpoint)

    def alock(self) -> asyncio.Lock:
        if self._alock is None:
            self._alock = asyncio.Lock()
        return self._alock

    @property
    def lock(self) -> threading.Lock:
        return self._lock
