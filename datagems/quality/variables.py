"""Per-record variables: declared on a job, drawn once per record, written into its prompt.

A job's details carry ``variables``: a list of ``{"name", "kind", ...}`` (``Variable``).
Each record ``i`` gets one value per variable, drawn by ``draw`` from a ``random.Random``
seeded with a hash of (job seed, index, variable name): a pure function, so a resumed,
retried or taken-over record on any replica gets the same values, and a retry round
(which changes the call's seed) does not change them. Person attributes come from Faker,
seeded the same way, in the variable's locale.

Values are JSON-serializable (dates as ISO strings, persons as ``{attribute: value}``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import random
import re
import threading
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

MAX_VARIABLES = 20
MAX_VALUES = 500
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,39}$"
Scalar = str | int | float | bool

# person attributes: what the prompt may ask for, and the Faker method that makes each
PERSON_ATTRIBUTES: dict[str, str] = {
    "name": "name",
    "first_name": "first_name",
    "last_name": "last_name",
    "city": "city",
    "country": "country",
    "email": "email",
    "phone": "phone_number",
    "job": "job",
    "company": "company",
    "address": "street_address",
    "postcode": "postcode",
    "age": "",  # an integer 18-90, drawn by the variable's own generator
}


class _Variable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=NAME_PATTERN)]


class CategoryVariable(_Variable):
    kind: Literal["category"]
    values: Annotated[list[Scalar], Field(min_length=1, max_length=MAX_VALUES)]
    weights: list[Annotated[float, Field(ge=0)]] | None = None

    @model_validator(mode="after")
    def _weights_fit(self) -> CategoryVariable:
        if self.weights is not None:
            if len(self.weights) != len(self.values):
                raise ValueError(
                    f"{len(self.weights)} weights for {len(self.values)} values: give one each"
                )
            if sum(self.weights) <= 0:
                raise ValueError("the weights must not all be 0")
        return self


class NumberVariable(_Variable):
    kind: Literal["number"]
    min: float
    max: float
    distribution: Literal["uniform", "normal"] = "uniform"
    mean: float | None = None
    stddev: Annotated[float, Field(gt=0)] | None = None
    integer: bool = False

    @model_validator(mode="after")
    def _bounds(self) -> NumberVariable:
        if self.min > self.max:
            raise ValueError(f"min ({self.min:g}) is above max ({self.max:g})")
        if self.integer and math.ceil(self.min) > math.floor(self.max):
            raise ValueError(f"no integer between {self.min:g} and {self.max:g}")
        return self


class DateVariable(_Variable):
    kind: Literal["date"]
    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _order(self) -> DateVariable:
        if self.start > self.end:
            raise ValueError(f"start ({self.start}) is after end ({self.end})")
        return self


class PersonVariable(_Variable):
    kind: Literal["person"]
    attributes: Annotated[list[str], Field(min_length=1, max_length=len(PERSON_ATTRIBUTES))] = [
        "name"
    ]
    locale: str = "en_US"

    @model_validator(mode="after")
    def _known(self) -> PersonVariable:
        unknown = [a for a in self.attributes if a not in PERSON_ATTRIBUTES]
        if unknown:
            raise ValueError(
                f"unknown person attribute {unknown[0]!r} (one of {', '.join(PERSON_ATTRIBUTES)})"
            )
        from faker.config import AVAILABLE_LOCALES

        if self.locale not in AVAILABLE_LOCALES:
            raise ValueError(f"unknown locale {self.locale!r} (for example en_US, de_DE, fr_FR)")
        return self


class SubsetVariable(_Variable):
    kind: Literal["subset"]
    values: Annotated[list[Scalar], Field(min_length=1, max_length=MAX_VALUES)]
    min_size: Annotated[int, Field(ge=0)] = 1
    max_size: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _sizes(self) -> SubsetVariable:
        top = len(self.values) if self.max_size is None else self.max_size
        if self.min_size > top or top > len(self.values):
            raise ValueError(f"sizes {self.min_size}-{top} do not fit {len(self.values)} values")
        return self


Variable = Annotated[
    CategoryVariable | NumberVariable | DateVariable | PersonVariable | SubsetVariable,
    Field(discriminator="kind"),
]
_ONE = TypeAdapter(Variable)


class VariableError(ValueError):
    """A declared variable that is not valid; the message names it and says why."""


def _why(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in _KINDS)
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


_KINDS = ("category", "number", "date", "person", "subset")


def parse_variable(raw: Any) -> Variable:
    """One declared variable, checked; ``VariableError`` names what is wrong."""
    name = raw.get("name") if isinstance(raw, dict) else None
    label = f"variable {name!r}" if isinstance(name, str) and name else "a variable"
    if not isinstance(raw, dict):
        raise VariableError(f"{label} must be an object")
    if raw.get("kind") not in _KINDS:
        raise VariableError(f"{label}: kind must be one of {', '.join(_KINDS)}")
    try:
        return _ONE.validate_python(raw)
    except ValidationError as exc:
        raise VariableError(f"{label}: {_why(exc)}") from exc


def parse_variables(raw: Any) -> list[Variable]:
    """A job's declared variables, all checked (the first bad one raises, named)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise VariableError("variables must be a list")
    if len(raw) > MAX_VARIABLES:
        raise VariableError(f"at most {MAX_VARIABLES} variables per job")
    parsed = [parse_variable(item) for item in raw]
    names = [v.name for v in parsed]
    for name in names:
        if names.count(name) > 1:
            raise VariableError(f"variable {name!r} is declared twice")
    return parsed


def proposed_variables(raw: Any, warnings: list[str]) -> list[dict[str, Any]]:
    """The variables a draft proposes, each checked: a proposal that is not valid is
    dropped with a warning naming it (never silently); the valid ones as wire dicts."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        warnings.append("variables proposed by the draft were dropped: not a list")
        return []
    kept: list[dict[str, Any]] = []
    for item in raw[:MAX_VARIABLES]:
        try:
            variable = parse_variable(item)
        except VariableError as exc:
            warnings.append(f"proposed {exc} (dropped)")
            continue
        if any(v["name"] == variable.name for v in kept):
            warnings.append(f"proposed variable {variable.name!r} twice (the second dropped)")
            continue
        kept.append(wire(variable))
    return kept


def wire(variable: Variable) -> dict[str, Any]:
    """As stored in the job details: camelCase-free, as the contract gives it."""
    return variable.model_dump(mode="json", exclude_none=True)


# --------------------------------------------------------------------------- draws


def job_seed(job_id: str, given: int | None = None) -> int:
    """The seed of a job's draws: the one given at confirm, else derived from its id."""
    if given is not None:
        return int(given)
    return int.from_bytes(hashlib.sha256(f"vars:{job_id}".encode()).digest()[:8], "big")


def draw_seed(seed: int, index: int, name: str) -> int:
    """The seed of one draw: a pure function of (job seed, record index, variable name)."""
    digest = hashlib.sha256(f"{seed}:{index}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


_FAKERS = threading.local()


def _faker(locale: str) -> Any:
    """One Faker per locale and thread (seeding one is not thread-safe)."""
    cache = getattr(_FAKERS, "by_locale", None)
    if cache is None:
        cache = _FAKERS.by_locale = {}
    fake = cache.get(locale)
    if fake is None:
        from faker import Faker

        fake = cache[locale] = Faker(locale)
    return fake


def draw(variable: Variable, seed: int, index: int) -> Any:
    """The value of ``variable`` for record ``index`` of a job of seed ``seed``."""
    own = draw_seed(seed, index, variable.name)
    rng = random.Random(own)
    match variable:
        case CategoryVariable():
            return rng.choices(variable.values, weights=variable.weights)[0]
        case NumberVariable():
            return _number(variable, rng)
        case DateVariable():
            span = (variable.end - variable.start).days
            return (variable.start + dt.timedelta(days=rng.randint(0, span))).isoformat()
        case PersonVariable():
            fake = _faker(variable.locale)
            fake.seed_instance(own)
            person: dict[str, Any] = {}
            for attribute in variable.attributes:
                method = PERSON_ATTRIBUTES[attribute]
                person[attribute] = getattr(fake, method)() if method else rng.randint(18, 90)
            return person
        case SubsetVariable():
            top = len(variable.values) if variable.max_size is None else variable.max_size
            size = rng.randint(variable.min_size, top)
            chosen = set(rng.sample(range(len(variable.values)), size))
            return [v for n, v in enumerate(variable.values) if n in chosen]
    raise VariableError(f"variable {variable.name!r}: unknown kind")  # pragma: no cover


def _number(variable: NumberVariable, rng: random.Random) -> int | float:
    low, high = variable.min, variable.max
    if variable.distribution == "normal":
        mean = variable.mean if variable.mean is not None else (low + high) / 2
        stddev = variable.stddev if variable.stddev is not None else ((high - low) / 6 or 1.0)
        value = min(high, max(low, rng.gauss(mean, stddev)))
    else:
        value = rng.uniform(low, high)
    if variable.integer:
        bottom, top = math.ceil(low), math.floor(high)
        return min(top, max(bottom, round(value)))
    return round(value, 4)


def draws(variables: list[Variable], seed: int, index: int) -> dict[str, Any]:
    """Every variable's value for record ``index``, in declaration order."""
    return {v.name: draw(v, seed, index) for v in variables}


_SAFE = re.compile(r"\s+")


def prompt_lines(values: dict[str, Any]) -> list[str]:
    """One short line per variable, for the record's prompt."""
    if not values:
        return []
    lines = ["Use these values for this record (they are fixed; build the record around them):"]
    for name, value in values.items():
        shown = value if isinstance(value, str) else orjson.dumps(value).decode()
        lines.append(f"- {name}: {_SAFE.sub(' ', str(shown))[:300]}")
    return lines
