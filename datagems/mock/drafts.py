"""The mock gateway's answer to a schema-draft request.

``draft_schema(text, rng)`` returns a 2020-12 object schema with 3-6 properties inferred
from the words of the prompt (the title, description and instructions the user wrote).
"""

from __future__ import annotations

import random
import re
from typing import Any

_THEMES: tuple[tuple[tuple[str, ...], tuple[tuple[str, dict[str, Any]], ...]], ...] = (
    (
        (
            "customer",
            "client",
            "user",
            "person",
            "people",
            "profile",
            "employee",
            "patient",
            "student",
            "member",
            "contact",
        ),
        (
            ("full_name", {"type": "string", "description": "Full name", "minLength": 2}),
            ("email", {"type": "string", "format": "email", "description": "E-mail address"}),
            (
                "age",
                {"type": "integer", "minimum": 18, "maximum": 99, "description": "Age in years"},
            ),
            ("city", {"type": "string", "description": "City of residence"}),
            ("signup_date", {"type": "string", "format": "date", "description": "Date of sign-up"}),
        ),
    ),
    (
        ("product", "catalog", "catalogue", "shop", "store", "ecommerce", "inventory", "item"),
        (
            ("product_name", {"type": "string", "description": "Product name", "minLength": 2}),
            ("price", {"type": "number", "minimum": 0, "description": "Price in USD"}),
            (
                "category",
                {
                    "type": "string",
                    "enum": ["home", "outdoor", "electronics", "kitchen", "fitness"],
                    "description": "Category",
                },
            ),
            ("in_stock", {"type": "boolean", "description": "Whether it is in stock"}),
            ("sku", {"type": "string", "description": "Stock keeping unit"}),
        ),
    ),
    (
        ("review", "reviews", "feedback", "rating", "opinion", "sentiment"),
        (
            (
                "rating",
                {"type": "integer", "minimum": 1, "maximum": 5, "description": "Star rating"},
            ),
            ("review_text", {"type": "string", "minLength": 10, "description": "The review"}),
            ("reviewer_name", {"type": "string", "description": "Who wrote it"}),
            ("review_date", {"type": "string", "format": "date", "description": "When"}),
        ),
    ),
    (
        ("order", "orders", "purchase", "transaction", "invoice", "payment", "sale"),
        (
            ("order_id", {"type": "string", "format": "uuid", "description": "Order id"}),
            ("amount", {"type": "number", "minimum": 0, "description": "Total amount"}),
            (
                "currency",
                {"type": "string", "enum": ["USD", "EUR", "GBP", "JPY"], "description": "Currency"},
            ),
            (
                "status",
                {
                    "type": "string",
                    "enum": ["pending", "paid", "shipped", "refunded"],
                    "description": "Order status",
                },
            ),
            (
                "created_at",
                {"type": "string", "format": "date-time", "description": "Creation time"},
            ),
        ),
    ),
    (
        ("book", "books", "movie", "movies", "film", "song", "music", "album", "novel"),
        (
            ("title", {"type": "string", "minLength": 1, "description": "Title"}),
            ("author", {"type": "string", "description": "Author or director"}),
            (
                "year",
                {
                    "type": "integer",
                    "minimum": 1900,
                    "maximum": 2025,
                    "description": "Release year",
                },
            ),
            (
                "genre",
                {
                    "type": "string",
                    "enum": ["drama", "comedy", "sci-fi", "mystery", "romance"],
                    "description": "Genre",
                },
            ),
        ),
    ),
    (
        ("company", "companies", "business", "startup", "organization", "organisation"),
        (
            ("company_name", {"type": "string", "description": "Company name"}),
            (
                "industry",
                {
                    "type": "string",
                    "enum": ["software", "retail", "health", "energy", "finance"],
                    "description": "Industry",
                },
            ),
            (
                "employees",
                {"type": "integer", "minimum": 1, "maximum": 100000, "description": "Head count"},
            ),
            ("website", {"type": "string", "format": "uri", "description": "Home page"}),
        ),
    ),
    (
        ("city", "cities", "travel", "hotel", "trip", "location", "place", "destination"),
        (
            ("city", {"type": "string", "description": "City"}),
            ("country", {"type": "string", "description": "Country"}),
            (
                "latitude",
                {"type": "number", "minimum": -90, "maximum": 90, "description": "Latitude"},
            ),
            (
                "longitude",
                {"type": "number", "minimum": -180, "maximum": 180, "description": "Longitude"},
            ),
        ),
    ),
    (
        ("ticket", "support", "issue", "bug", "incident", "complaint"),
        (
            ("subject", {"type": "string", "description": "Short subject"}),
            ("description", {"type": "string", "minLength": 10, "description": "What happened"}),
            (
                "priority",
                {
                    "type": "string",
                    "enum": ["low", "medium", "high", "urgent"],
                    "description": "Priority",
                },
            ),
            (
                "opened_at",
                {"type": "string", "format": "date-time", "description": "When it was opened"},
            ),
        ),
    ),
    (
        ("bike", "bicycle", "car", "vehicle", "motorcycle", "scooter", "van", "truck"),
        (
            ("brand", {"type": "string", "description": "Maker"}),
            ("model", {"type": "string", "description": "Model name"}),
            (
                "year",
                {"type": "integer", "minimum": 1990, "maximum": 2026, "description": "Model year"},
            ),
            ("price_eur", {"type": "number", "minimum": 0, "description": "Asking price in EUR"}),
            (
                "condition",
                {
                    "type": "string",
                    "enum": ["new", "like new", "good", "fair", "for parts"],
                    "description": "Condition",
                },
            ),
            (
                "mileage_km",
                {"type": "integer", "minimum": 0, "maximum": 400000, "description": "Distance"},
            ),
        ),
    ),
    (
        ("recipe", "recipes", "food", "dish", "meal", "cooking"),
        (
            ("dish_name", {"type": "string", "description": "Name of the dish"}),
            (
                "ingredients",
                {
                    "type": "array",
                    "items": {"type": "string"},
                    "minItems": 2,
                    "maxItems": 12,
                    "description": "Ingredients",
                },
            ),
            (
                "calories",
                {
                    "type": "integer",
                    "minimum": 50,
                    "maximum": 2000,
                    "description": "Calories per serving",
                },
            ),
            (
                "prep_minutes",
                {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 240,
                    "description": "Preparation time",
                },
            ),
        ),
    ),
)

_DEFAULT_PROPS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("id", {"type": "string", "format": "uuid", "description": "Identifier"}),
    ("name", {"type": "string", "minLength": 1, "description": "Name"}),
    ("description", {"type": "string", "description": "Free text description"}),
    ("created_at", {"type": "string", "format": "date-time", "description": "Creation time"}),
    ("tags", {"type": "array", "items": {"type": "string"}, "maxItems": 5, "description": "Tags"}),
)

_LABEL_WORDS = ("classification", "labeled", "labelled", '"label"', "label")

_ASKED = re.compile(
    r"^(?:dataset title|one record describes|instructions for the data):\s*(.*)$",
    re.IGNORECASE | re.MULTILINE,
)


def draft_schema(text: str, rng: random.Random) -> dict[str, Any]:
    """A plausible 2020-12 record schema for a schema-draft prompt (3-6 properties).

    The theme comes from what the user wrote (title, description, instructions, when the
    prompt has those lines), not from the prompt's own wording."""
    lowered = text.lower()
    asked = " ".join(_ASKED.findall(text)).lower() or lowered
    words = re.findall(r"[a-z]+", asked)
    positions: dict[str, int] = {}
    for position, word in enumerate(words):
        positions.setdefault(word, position)
        positions.setdefault(word.removesuffix("s"), position)  # customers -> customer
    # a theme ranks by how many of its words (its keys and its field names) the prompt
    # uses, then by how early: "customers ... with name, email, city" beats "shop"
    matched: list[tuple[int, int, tuple[tuple[str, dict[str, Any]], ...]]] = []
    for keys, props in _THEMES:
        fields = {part for name, _ in props for part in name.split("_")}
        hits = [positions[k] for k in (*keys, *fields) if k in positions]
        if hits:
            matched.append((-len(hits), min(hits), props))
    matched.sort(key=lambda item: item[:2])
    chosen: dict[str, dict[str, Any]] = {}
    for _, _, props in matched:
        for name, sub in props:
            chosen.setdefault(name, dict(sub))
    for name, sub in _DEFAULT_PROPS:
        if len(chosen) >= 3:
            break
        chosen.setdefault(name, dict(sub))
    names = list(chosen)
    count = min(len(names), rng.randint(3, 6))
    properties = {name: chosen[name] for name in names[:count]}
    if any(word in lowered for word in _LABEL_WORDS):
        if len(properties) >= 6:
            properties.pop(next(reversed(properties)))
        properties["label"] = {
            "type": "string",
            "enum": ["positive", "negative", "neutral"],
            "description": "The class of the record",
        }
    title_match = re.search(r"dataset title:\s*(.+)", text, re.IGNORECASE)
    title = title_match.group(1).strip()[:80] if title_match else "Record"
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
