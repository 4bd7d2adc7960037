"""Plausible values by property name for the mock's records: names, e-mails, cities,
prices, ages, descriptions... and the string formats (email, date, uri, uuid...).

Word tables and small generators only; ``records`` picks among them by a property's name.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable

FIRST = (
    "Ana",
    "Bram",
    "Chen",
    "Dalia",
    "Emeka",
    "Freya",
    "Goran",
    "Hana",
    "Ivo",
    "Jamal",
    "Kenji",
    "Lucia",
    "Mateo",
    "Nadia",
    "Oskar",
    "Priya",
    "Quentin",
    "Rosa",
    "Sven",
    "Tariq",
    "Uma",
    "Viktor",
    "Wen",
    "Ximena",
    "Yusuf",
    "Zofia",
)

LAST = (
    "Almeida",
    "Bianchi",
    "Chowdhury",
    "Dubois",
    "Eriksen",
    "Fischer",
    "García",
    "Haddad",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Mensah",
    "Nakamura",
    "Okafor",
    "Popescu",
    "Quispe",
    "Rossi",
    "Silva",
    "Tanaka",
    "Ueda",
    "Varga",
    "Wójcik",
    "Yilmaz",
    "Zhang",
)

CITIES = (
    ("Lisbon", "Portugal"),
    ("Kraków", "Poland"),
    ("Osaka", "Japan"),
    ("Nairobi", "Kenya"),
    ("Montréal", "Canada"),
    ("Valparaíso", "Chile"),
    ("Tbilisi", "Georgia"),
    ("Bergen", "Norway"),
    ("Pune", "India"),
    ("Cluj-Napoca", "Romania"),
    ("Accra", "Ghana"),
    ("Perth", "Australia"),
    ("Medellín", "Colombia"),
    ("Ghent", "Belgium"),
    ("Hanoi", "Vietnam"),
    ("Austin", "United States"),
)

STREETS = ("Oak", "Harbour", "Mill", "Station", "Linden", "Market", "Cedar", "River", "Hill")

COMPANIES = (
    "Northwind Labs",
    "Bluefin Analytics",
    "Copperleaf Foods",
    "Helix Robotics",
    "Meridian Health",
    "Tidewater Logistics",
    "Quartz & Co",
    "Evergreen Energy",
)

PRODUCTS = (
    "ceramic pour-over kettle",
    "wireless ergonomic mouse",
    "merino wool scarf",
    "cast-iron skillet",
    "noise-cancelling headphones",
    "bamboo cutting board",
    "trail running shoes",
    "smart plant sensor",
    "linen bed sheets",
    "espresso grinder",
)

WORDS = (
    "amber",
    "brisk",
    "cobalt",
    "delta",
    "ember",
    "fable",
    "granite",
    "harbor",
    "iris",
    "juniper",
    "kelp",
    "lumen",
    "maple",
    "nimbus",
    "orbit",
    "prism",
    "quill",
    "ripple",
    "sable",
    "tundra",
    "umber",
    "vertex",
    "willow",
    "zephyr",
)

SENTENCES = (
    "Arrived on time and works exactly as described.",
    "The quality is decent, though the packaging could be better.",
    "A thoughtful design with a few rough edges.",
    "Reliable in daily use over several months.",
    "Not what I expected, but support resolved it quickly.",
    "Great value for the price, would recommend to friends.",
    "Setup took longer than planned because the manual is vague.",
    "Compact, sturdy and surprisingly quiet.",
    "Colours are slightly different from the photos.",
    "Handles heavy workloads without slowing down.",
)

COLORS = ("teal", "crimson", "ochre", "slate", "ivory", "olive", "navy", "coral")

CATEGORIES = ("home", "outdoor", "electronics", "books", "kitchen", "fitness", "garden", "toys")

JOBS = ("nurse", "data analyst", "carpenter", "teacher", "pilot", "chef", "architect", "welder")

LANGS = ("en", "pt", "pl", "ja", "sw", "fr", "es", "de")

STATUSES = ("active", "pending", "inactive", "archived")

DOMAINS = ("example.com", "example.org", "mail.example.net", "corp.example.com")

_NUMBER_RANGES: tuple[tuple[tuple[str, ...], float, float], ...] = (
    (("age",), 18, 90),
    (("salary", "income", "wage"), 28_000, 180_000),
    (("price", "cost", "amount", "total", "fee", "balance"), 1, 1_500),
    (("rating", "stars"), 1, 5),
    (("score",), 0, 100),
    (("percent", "percentage", "ratio"), 0, 100),
    (("year",), 1960, 2025),
    (("quantity", "count", "stock", "qty", "items"), 0, 500),
    (("latitude", "lat"), -90, 90),
    (("longitude", "lng", "lon"), -180, 180),
    (("minutes", "duration"), 1, 240),
    (("height",), 140, 205),
    (("weight",), 40, 130),
    (("population",), 1_000, 5_000_000),
    (("employees", "staff", "headcount"), 1, 20_000),
    (("calories",), 50, 1_500),
)


def _name_key(name: str) -> str:
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name).lower()


def _first_last(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FIRST), rng.choice(LAST)


def _email(rng: random.Random) -> str:
    first, last = _first_last(rng)
    ascii_last = last.encode("ascii", "ignore").decode() or "user"
    return f"{first.lower()}.{ascii_last.lower()}{rng.randint(1, 999)}@{rng.choice(DOMAINS)}"


def _date(rng: random.Random) -> str:
    return f"{rng.randint(2000, 2025):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _datetime(rng: random.Random) -> str:
    return (
        f"{_date(rng)}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"
    )


def _uri(rng: random.Random) -> str:
    host = f"www.{rng.choice(WORDS)}-{rng.choice(WORDS)}.example.com"
    return f"https://{host}/{rng.choice(WORDS)}/{rng.randint(1, 9999)}"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


FORMATS: dict[str, Callable[[random.Random], str]] = {
    "email": _email,
    "idn-email": _email,
    "date": _date,
    "date-time": _datetime,
    "time": lambda rng: (
        f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"
    ),
    "uri": _uri,
    "url": _uri,
    "iri": _uri,
    "uri-reference": _uri,
    "iri-reference": _uri,
    "uuid": _uuid,
    "hostname": lambda rng: f"{rng.choice(WORDS)}.{rng.choice(DOMAINS)}",
    "idn-hostname": lambda rng: f"{rng.choice(WORDS)}.{rng.choice(DOMAINS)}",
    "ipv4": lambda rng: f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
    "ipv6": lambda rng: f"fd00::{rng.randint(1, 0xFFFF):x}:{rng.randint(1, 0xFFFF):x}",
    "duration": lambda rng: f"P{rng.randint(1, 30)}D",
}


def _by_name(name: str) -> Callable[[random.Random], str] | None:
    """A plausible string generator for a property name, or ``None``."""
    key = _name_key(name)
    words = set(re.split(r"[^a-z]+", key))

    def has(*tokens: str) -> bool:
        return any(t in words for t in tokens)

    if has("email", "mail"):
        return _email
    if has("uuid", "guid") or key in ("id",) or key.endswith("_id"):
        return _uuid
    if has("url", "website", "link", "homepage", "uri"):
        return _uri
    if has("first", "given") and has("name"):
        return lambda rng: rng.choice(FIRST)
    if has("last", "surname", "family") and (has("name") or "surname" in words):
        return lambda rng: rng.choice(LAST)
    if has("username", "handle", "login"):
        return lambda rng: f"{rng.choice(FIRST).lower()}_{rng.choice(WORDS)}{rng.randint(1, 99)}"
    if has("company", "employer", "organization", "organisation", "brand", "vendor"):
        return lambda rng: rng.choice(COMPANIES)
    if has("product", "item"):
        return lambda rng: rng.choice(PRODUCTS)
    if has("city", "town"):
        return lambda rng: rng.choice(CITIES)[0]
    if has("country", "nation"):
        return lambda rng: rng.choice(CITIES)[1]
    if has("address", "street"):
        return lambda rng: f"{rng.randint(1, 400)} {rng.choice(STREETS)} Street"
    if has("zip", "postal", "postcode"):
        return lambda rng: f"{rng.randint(10000, 99999)}"
    if has("phone", "mobile", "tel"):
        return lambda rng: f"+1-555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}"
    if has("name", "author", "customer", "person", "reviewer", "owner", "contact", "sender"):
        return lambda rng: "{} {}".format(*_first_last(rng))
    if has(
        "description",
        "summary",
        "bio",
        "text",
        "review",
        "comment",
        "notes",
        "content",
        "body",
        "message",
        "feedback",
    ):
        return lambda rng: " ".join(rng.sample(SENTENCES, rng.randint(1, 2)))
    if has("title", "subject", "headline"):
        return lambda rng: f"The {rng.choice(WORDS).title()} {rng.choice(WORDS).title()}"
    if has("color", "colour"):
        return lambda rng: rng.choice(COLORS)
    if has("currency"):
        return lambda rng: rng.choice(("USD", "EUR", "JPY", "GBP", "BRL"))
    if has("category", "genre", "type", "kind", "department", "industry"):
        return lambda rng: rng.choice(CATEGORIES)
    if has("job", "occupation", "role", "position", "profession"):
        return lambda rng: rng.choice(JOBS)
    if has("status", "state"):
        return lambda rng: rng.choice(STATUSES)
    if has("language", "lang", "locale"):
        return lambda rng: rng.choice(LANGS)
    if has("date", "birthday", "dob"):
        return _date
    if has("at", "time", "timestamp", "created", "updated"):
        return _datetime
    if has("sku", "code"):
        return lambda rng: f"{rng.choice(WORDS)[:3].upper()}-{rng.randint(1000, 9999)}"
    return None


def _word_string(rng: random.Random) -> str:
    return f"{rng.choice(WORDS)} {rng.choice(WORDS)}"
