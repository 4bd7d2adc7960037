"""Pydantic models of the request bodies, and the one helper that reads them.

Text fields are stripped before their bounds are checked, so whitespace-only text is empty;
a required text made only of invisible characters (zero-width spaces and joiners, bidi
marks, fillers) is empty too. Every single-line text (anything that may reach a mail
header, an outgoing header or a log line) refuses control characters (C0, DEL, C1, and
the Unicode line and paragraph separators); the long texts (description, instructions)
keep newlines and tabs and refuse the other controls. ``totalRecords`` is a strict integer
(``"12"`` and ``true`` are 400), bounded by ``settings.max_records_per_job``, passed in the
validation context (``{"max_records": N}``).
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal, TypeVar

import orjson
from aiohttp import web
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.alias_generators import to_camel

from datagems.errors import BadRequest, PayloadTooLarge

B = TypeVar("B", bound=BaseModel)


CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
MULTILINE_ALLOWED = frozenset("\n\r\t")
# Letters that render as nothing (Hangul fillers, the braille blank)
INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def has_controls(value: str, *, multiline: bool = False) -> bool:
    allowed = MULTILINE_ALLOWED if multiline else frozenset()
    return any(unicodedata.category(ch) in CONTROL_CATEGORIES and ch not in allowed for ch in value)


def is_visible(ch: str) -> bool:
    return not (
        ch.isspace()
        or ch in INVISIBLE_LETTERS
        or unicodedata.category(ch) in ("Cf", "Cc", "Mn", "Me", "Zs", "Zl", "Zp")
    )


def _checker(multiline: bool, required: bool) -> Any:
    def check(value: str) -> str:
        if has_controls(value, multiline=multiline):
            raise ValueError("must not contain control characters")
        if required and not any(is_visible(ch) for ch in value):
            raise ValueError("must not be empty")
        return value

    return check


def _text(max_length: int, min_length: int = 1, *, multiline: bool = False) -> Any:
    return Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length),
        AfterValidator(_checker(multiline, required=min_length > 0)),
    ]


def _line(max_length: int, **constraints: Any) -> Any:
    """A single-line string without the stripping and emptiness rules of ``_text``."""
    return Annotated[
        str,
        StringConstraints(max_length=max_length, **constraints),
        AfterValidator(_checker(False, required=False)),
    ]


Title = _text(200)
Description = _text(2000, multiline=True)
Instructions = _text(8000, multiline=True)
ShortText = _text(200)
OptionalText = _text(200, 0)
EmailText = _line(
    200,
    strip_whitespace=True,
    to_lower=True,
    pattern=r"^[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+$",
)
UrlText = _line(2000, strip_whitespace=True)
KeyText = _line(4000, strip_whitespace=True)


class Body(BaseModel):
    """camelCase on the wire; unknown fields ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class LoginBody(Body):
    username: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1000)]


class RegisterBody(Body):
    name: _text(120)
    email: EmailText
    country: _text(120, 0) = ""


class ResendBody(Body):
    email: _line(200, strip_whitespace=True, to_lower=True)


class ResetBody(Body):
    """The link's token and the new password the owner chose."""

    token: Annotated[str, StringConstraints(min_length=1, max_length=4000)]
    password: Annotated[str, StringConstraints(min_length=10, max_length=1000)]


class InferenceOverrides(Body):
    """The inference choice of the original's form fields."""

    use_external_api: bool | None = None
    profile_id: OptionalText | None = None
    inference_base_url: _line(2000) | None = None
    inference_path: OptionalText | None = None
    inference_model: OptionalText | None = None
    inference_params: dict[str, Any] | None = None


class SchemaBody(InferenceOverrides):
    title: Title
    total_records: StrictInt = Field(ge=1)
    description: Description
    instructions: Instructions
    dataset_mode: bool | OptionalText | None = None  # the original's form sends a boolean
    previous_draft_token: Annotated[str, StringConstraints(max_length=20000)] | None = None
    feedback: _text(2000, 0, multiline=True) | None = None  # what to change in a redraft

    @field_validator("total_records")
    @classmethod
    def _at_most_max(cls, value: int, info: ValidationInfo) -> int:
        limit = (info.context or {}).get("max_records")
        if limit is not None and value > limit:
            raise ValueError(f"must be at most {limit}")
        return value


class SeedChoice(Body):
    """An uploaded seed file (``POST /api/seeds``) and how records use its rows (ours)."""

    cid: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    token: Annotated[str, StringConstraints(min_length=1, max_length=200)]  # the upload's
    mode: Literal["in_order", "sampled", "without_replacement"] = "in_order"


class Conditioned(Body):
    """Ours (datagems.quality): the per-record variables kept from the draft's proposals
    (checked by ``quality.variables``), their draws' seed, and a seed file to condition on."""

    variables: list[Any] | None = Field(default=None, max_length=20)
    seed: Annotated[StrictInt, Field(ge=0, le=2**53)] | None = None
    seed_data: SeedChoice | None = None


class DraftChanges(Body):
    """The form's fields changed since the draft (author helper): the confirm and the
    preview use them over the draft's (``datagems.web.draft_edits``)."""

    title: Title | None = None
    total_records: StrictInt | None = None
    description: Description | None = None
    instructions: Instructions | None = None
    dataset_mode: bool | OptionalText | None = None


class PreviewBody(DraftChanges, Conditioned):
    draft_token: Annotated[str, StringConstraints(min_length=1, max_length=20000)]
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")


class ConfirmBody(InferenceOverrides, DraftChanges, Conditioned):
    draft_token: Annotated[str, StringConstraints(min_length=1, max_length=20000)]
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    # quality (issue 17): this job's near-duplicate threshold (absent: the setting's)
    near_duplicate_threshold: float | None = Field(default=None, gt=0.0, le=1.0)


class ExtendBody(Body):
    additional_records: StrictInt


class ProfileBody(Body):
    id: OptionalText | None = None
    name: OptionalText | None = None
    base_url: UrlText | None = None
    api_key: KeyText | None = None
    model: OptionalText | None = None
    path: OptionalText | None = None
    set_active: bool | None = None
    # quality (issue 17): prices per million tokens (given as null: cleared)
    price_in_per_million: float | None = Field(default=None, ge=0.0, le=1_000_000.0)
    price_out_per_million: float | None = Field(default=None, ge=0.0, le=1_000_000.0)
    # the record calls' defaults (null clears one); a job's inferenceParams override them
    temperature: float | None = Field(default=None, ge=0, le=2, strict=True)
    max_tokens: StrictInt | None = Field(default=None, ge=1, le=8192)


class ProfileDeleteBody(Body):
    id: ShortText


class ModelsBody(Body):
    profile_id: OptionalText | None = None
    base_url: UrlText | None = None
    api_key: KeyText | None = None


class AccountCreateBody(Body):
    """An account an administrator makes (no mail): the password is shown once."""

    email: EmailText
    name: _text(120)
    country: _text(120, 0) = ""


class PasswordResetBody(Body):
    username: ShortText


class AccountDeleteBody(Body):
    username: ShortText
    purge: StrictBool = False  # true: remove the account's data with it (keys first)


def describe(exc: ValidationError) -> str:
    """One readable line for the first validation error (never echoing the input)."""
    first = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "__root__")
    kind = first.get("type", "")
    ctx = first.get("ctx") or {}
    if kind == "missing":
        message = "is required"
    elif kind == "string_too_short":
        least = ctx.get("min_length")
        message = "must not be empty" if least == 1 else f"must be at least {least} characters"
    elif kind == "string_too_long":
        message = f"must be at most {ctx.get('max_length')} characters"
    elif kind == "string_pattern_mismatch":
        message = "is not valid"
    else:
        message = str(first.get("msg", "is not valid")).removeprefix("Value error, ")
    return f"{where} {message}" if where else message


def parse_body(model: type[B], data: Any, *, context: dict[str, Any] | None = None) -> B:
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise BadRequest(describe(exc)) from None


async def read_body(
    request: web.Request, model: type[B], *, context: dict[str, Any] | None = None
) -> B:
    """The JSON body as ``model``: 400 when malformed or out of bounds, 413 when too big."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge("request body too large") from None
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise BadRequest("malformed JSON body") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return parse_body(model, data, context=context)
