"""The schema set of the benchmark (issue 19): small, medium and large record schemas.

- small: the 6-field flat schema of scenario 1;
- medium: the JSON Schema of a small pydantic model: 11 fields, a nested object through
  ``$defs`` / ``$ref``, two enums, numeric bounds, an array with length bounds;
- large: 34 fields, objects nested two levels deep, arrays of objects, 9 patterns and 7
  formats.
"""

from __future__ import annotations

from typing import Any

from datagems.bench.scenarios import SCHEMA as SMALL

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def _text(low: int, high: int, title: str) -> dict[str, Any]:
    return {"title": title, "type": "string", "minLength": low, "maxLength": high}


MEDIUM: dict[str, Any] = {
    "$schema": DIALECT,
    "title": "Order",
    "type": "object",
    "$defs": {
        "Address": {
            "title": "Address",
            "type": "object",
            "properties": {
                "street": _text(1, 80, "Street"),
                "city": _text(1, 60, "City"),
                "postcode": _text(3, 10, "Postcode"),
                "country": _text(2, 2, "Country"),
            },
            "required": ["street", "city", "postcode", "country"],
            "additionalProperties": False,
        }
    },
    "properties": {
        "order_id": {"title": "Order Id", "type": "string", "format": "uuid"},
        "customer_name": _text(1, 80, "Customer Name"),
        "email": {"title": "Email", "type": "string", "format": "email"},
        "status": {
            "title": "Status",
            "type": "string",
            "enum": ["pending", "paid", "shipped", "delivered", "cancelled"],
        },
        "channel": {"title": "Channel", "type": "string", "enum": ["web", "store", "phone"]},
        "quantity": {"title": "Quantity", "type": "integer", "minimum": 1, "maximum": 100},
        "unit_price": {
            "title": "Unit Price",
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 10000,
        },
        "discount": {"title": "Discount", "type": "number", "minimum": 0, "maximum": 0.5},
        "placed_on": {"title": "Placed On", "type": "string", "format": "date"},
        "shipping_address": {"$ref": "#/$defs/Address"},
        "items": {
            "title": "Items",
            "type": "array",
            "items": _text(1, 40, "Item"),
            "minItems": 1,
            "maxItems": 5,
        },
    },
    "required": [
        "order_id",
        "customer_name",
        "email",
        "status",
        "channel",
        "quantity",
        "unit_price",
        "discount",
        "placed_on",
        "shipping_address",
        "items",
    ],
    "additionalProperties": False,
}

EMPLOYEE_ID = "^EMP-[0-9]{6}$"
PHONE = "^\\+[1-9][0-9]{7,12}$"

LARGE: dict[str, Any] = {
    "$schema": DIALECT,
    "title": "Employee",
    "type": "object",
    "$defs": {
        "Address": {
            "type": "object",
            "properties": {
                "street": _text(1, 80, "Street"),
                "city": _text(1, 60, "City"),
                "postcode": {"type": "string", "pattern": "^[A-Z0-9][A-Z0-9 -]{2,9}$"},
                "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
            },
            "required": ["street", "city", "postcode", "country"],
            "additionalProperties": False,
        },
        "Contact": {
            "type": "object",
            "properties": {
                "name": _text(1, 80, "Name"),
                "relation": {"enum": ["partner", "parent", "sibling", "friend", "other"]},
                "phone": {"type": "string", "pattern": PHONE},
            },
            "required": ["name", "relation", "phone"],
            "additionalProperties": False,
        },
    },
    "properties": {
        "employee_id": {"type": "string", "pattern": EMPLOYEE_ID},
        "first_name": _text(1, 40, "First Name"),
        "last_name": _text(1, 40, "Last Name"),
        "email": {"type": "string", "format": "email"},
        "phone": {"type": "string", "pattern": PHONE},
        "birth_date": {"type": "string", "format": "date"},
        "hired_at": {"type": "string", "format": "date-time"},
        "department": {
            "enum": ["engineering", "sales", "marketing", "finance", "legal", "support", "hr"]
        },
        "job_title": _text(2, 60, "Job Title"),
        "level": {"type": "integer", "minimum": 1, "maximum": 10},
        "salary": {"type": "number", "minimum": 20000, "maximum": 400000},
        "currency": {"enum": ["EUR", "USD", "GBP", "JPY", "INR"]},
        "bonus_rate": {"type": "number", "minimum": 0, "maximum": 0.3},
        "remote": {"type": "boolean"},
        "manager_id": {"type": ["string", "null"], "pattern": EMPLOYEE_ID},
        "office": {
            "type": "object",
            "properties": {
                "name": _text(1, 60, "Office Name"),
                "floor": {"type": "integer", "minimum": 0, "maximum": 80},
                "address": {"$ref": "#/$defs/Address"},
            },
            "required": ["name", "floor", "address"],
            "additionalProperties": False,
        },
        "home_address": {"$ref": "#/$defs/Address"},
        "emergency_contact": {"$ref": "#/$defs/Contact"},
        "skills": {
            "type": "array",
            "items": _text(1, 30, "Skill"),
            "minItems": 1,
            "maxItems": 8,
            "uniqueItems": True,
        },
        "languages": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "code": {"type": "string", "pattern": "^[a-z]{2}$"},
                    "level": {"enum": ["basic", "fluent", "native"]},
                },
                "required": ["code", "level"],
                "additionalProperties": False,
            },
            "minItems": 1,
            "maxItems": 4,
        },
        "certifications": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": _text(2, 60, "Certification"),
                    "issued_on": {"type": "string", "format": "date"},
                },
                "required": ["name", "issued_on"],
                "additionalProperties": False,
            },
            "maxItems": 5,
        },
        "website": {"type": "string", "format": "uri"},
        "username": {"type": "string", "pattern": "^[a-z][a-z0-9_]{2,15}$"},
        "status": {"enum": ["active", "on_leave", "notice", "alumni"]},
        "performance_score": {"type": "number", "minimum": 0, "maximum": 5},
        "projects_count": {"type": "integer", "minimum": 0, "maximum": 200},
        "last_review_on": {"type": "string", "format": "date"},
        "badge_id": {"type": "string", "format": "uuid"},
        "workstation_ip": {"type": "string", "format": "ipv4"},
        "notes": {"type": "string", "maxLength": 280},
        "tax_id": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{8,10}$"},
        "shirt_size": {"enum": ["XS", "S", "M", "L", "XL", "XXL"]},
    },
    "required": [
        "employee_id",
        "first_name",
        "last_name",
        "email",
        "phone",
        "birth_date",
        "hired_at",
        "department",
        "job_title",
        "level",
        "salary",
        "currency",
        "bonus_rate",
        "remote",
        "office",
        "home_address",
        "emergency_contact",
        "skills",
        "languages",
        "website",
        "username",
        "status",
        "performance_score",
        "projects_count",
        "badge_id",
        "tax_id",
    ],
    "additionalProperties": False,
}

SCHEMAS: dict[str, dict[str, Any]] = {"small": SMALL, "medium": MEDIUM, "large": LARGE}
