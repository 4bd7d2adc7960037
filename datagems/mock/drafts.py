"""The mock gateway's answer to a schema-draft request.

``draft_schema(text, rng)`` returns a 2020-12 object schema with 3-6 properties inferred
from the words of the prompt (the title, description and instructions the user wrote).
"""

from __future__ import annotations

import json
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
    # an incident report, a medication and a hospital ward (author helper, issue 16):
    # "incident reports for a hospital pharmacy" drafted a support ticket
    (
        (
            "incident",
            "accident",
            "adverse",
            "mishap",
            "near",
            "report",
            "safety",
            "severe",
            "severity",
        ),
        (
            (
                "incident_type",
                {
                    "type": "string",
                    "enum": [
                        "medication error",
                        "dispensing error",
                        "near miss",
                        "adverse reaction",
                        "equipment failure",
                    ],
                    "description": "What kind of incident",
                },
            ),
            (
                "severity",
                {
                    "type": "string",
                    "enum": ["none", "minor", "moderate", "severe", "critical"],
                    "description": "How severe the harm was",
                },
            ),
            (
                "occurred_at",
                {"type": "string", "format": "date-time", "description": "When it happened"},
            ),
            (
                "what_happened",
                {"type": "string", "minLength": 20, "description": "What happened, in short"},
            ),
            ("reported_by", {"type": "string", "description": "Role of the person reporting"}),
            ("action_taken", {"type": "string", "description": "What was done about it"}),
        ),
    ),
    (
        (
            "pharmacy",
            "pharmacist",
            "medication",
            "medicine",
            "drug",
            "prescription",
            "dose",
            "dispensing",
        ),
        (
            ("medication", {"type": "string", "description": "Medication involved"}),
            (
                "dose_mg",
                {"type": "number", "minimum": 0.1, "maximum": 5000, "description": "Dose in mg"},
            ),
            (
                "route",
                {
                    "type": "string",
                    "enum": ["oral", "intravenous", "intramuscular", "topical", "inhaled"],
                    "description": "How it is given",
                },
            ),
        ),
    ),
    (
        ("hospital", "clinic", "ward", "nurse", "clinical", "icu"),
        (
            (
                "ward",
                {
                    "type": "string",
                    "enum": ["emergency", "surgery", "pediatrics", "oncology", "icu", "pharmacy"],
                    "description": "Ward or unit",
                },
            ),
            (
                "shift",
                {"type": "string", "enum": ["day", "evening", "night"], "description": "Shift"},
            ),
        ),
    ),
    (
        ("ticket", "support", "issue", "bug", "complaint"),
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
LEAD_FIELDS = 4  # fields of the leading theme before the other themes' first fields
MAX_THEMES = 3  # themes whose first field a draft always has

_ASKED = re.compile(
    r"^(?:dataset title|one record describes|instructions for the data):\s*(.*)$",
    re.IGNORECASE | re.MULTILINE,
)


_FEEDBACK = re.compile(r"^feedback on the previous draft:\s*(.*)$", re.IGNORECASE | re.MULTILINE)
_PREVIOUS = re.compile(r"^the previous draft was:\s*(\{.*\})\s*$", re.IGNORECASE | re.MULTILINE)
_ADD = re.compile(
    r"^(?:please\s+)?(?:add|include)\s+(?:an?\s+|the\s+)?([a-z][a-z0-9 _-]{0,40}?)"
    r"(?:\s+field)?(?:\s+from\s+(-?\d+)\s+to\s+(-?\d+))?$"
)
_DROP = re.compile(
    r"^(?:please\s+)?(?:drop|remove|delete)\s+(?:the\s+)?([a-z][a-z0-9 _-]{0,40}?)(?:\s+field)?$"
)


def _snake(words: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", words.strip().lower()).strip("_")


def redraft(text: str) -> dict[str, Any] | None:
    """The previous draft changed as the user's feedback asks, when the prompt quotes
    both: "add a severity from 1 to 5; drop the e-mail" adds an integer ``severity``
    (1-5) and removes ``email``. ``None`` when the prompt is not such a redraft."""
    feedback, previous = _FEEDBACK.search(text), _PREVIOUS.search(text)
    if feedback is None or previous is None:
        return None
    try:
        schema = json.loads(previous.group(1))
    except ValueError:
        return None
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return None
    properties: dict[str, Any] = dict(schema["properties"])
    for clause in re.split(r"[;.,\n]|\band\b", feedback.group(1).lower()):
        clause = clause.strip()
        if added := _ADD.match(clause):
            name = _snake(added.group(1))
            if not name:
                continue
            if added.group(2) is not None:
                low, high = sorted((int(added.group(2)), int(added.group(3))))
                properties[name] = {"type": "integer", "minimum": low, "maximum": high}
            else:
                properties[name] = {"type": "string"}
            properties[name]["description"] = added.group(1).strip().capitalize()
        elif dropped := _DROP.match(clause):
            name = _snake(dropped.group(1))
            for key in [k for k in properties if _snake(k) in (name, name.replace("_", ""))]:
                del properties[key]
    changed = {**schema, "properties": properties}
    if isinstance(schema.get("required"), list):
        kept = [n for n in schema["required"] if n in properties]
        changed["required"] = kept + [n for n in properties if n not in kept]
    return changed


def draft_schema(text: str, rng: random.Random) -> dict[str, Any]:
    """A plausible 2020-12 record schema for a schema-draft prompt (3-6 properties).

    The theme comes from what the user wrote (title, description, instructions, when the
    prompt has those lines), not from the prompt's own wording. A redraft with feedback
    changes the previous draft as asked (``redraft``)."""
    changed = redraft(text)
    if changed is not None:
        return changed
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
    # the description's own nouns: the leading theme's first fields, then the first field
    # of every other theme it names ("... for a hospital pharmacy": a medication, a ward),
    # then the rest
    chosen: dict[str, dict[str, Any]] = {}
    lead = matched[0][2][:LEAD_FIELDS] if matched else ()
    others = [props[0] for _, _, props in matched[1:MAX_THEMES]]
    for name, sub in (*lead, *others):
        chosen.setdefault(name, dict(sub))
    named = len(chosen)
    for _, _, props in matched:
        for name, sub in props:
            chosen.setdefault(name, dict(sub))
    for name, sub in _DEFAULT_PROPS:
        if len(chosen) >= 3:
            break
        chosen.setdefault(name, dict(sub))
    names = list(chosen)
    count = min(len(names), max(rng.randint(3, 6), min(named, 6)))
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
