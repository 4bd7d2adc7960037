"""Variables a draft proposes: how the real model is asked, and the mock gateway's answer.

The draft prompt asks the model to add a top-level ``"x-variables"`` array to the schema
it drafts (``DRAFT_ASK``); the web layer takes it out before the schema is checked and
keeps the valid proposals (``variables.proposed_variables``). The mock gateway answers a
draft that asks for them with proposals read off the schema it drafted (``mock_proposals``).
"""

from __future__ import annotations

from typing import Any

PROPOSALS_KEY = "x-variables"
DRAFT_ASK = (
    'Also add a top-level "x-variables" array proposing 1 to 3 per-record variables that '
    "spread the records over realistic values (each is drawn before its record is made): "
    '{"name": "city", "kind": "category", "values": ["Lisbon", "Osaka", ...], "weights": '
    '[...]} for a field whose values should vary (places, categories), {"name", "kind": '
    '"number", "min", "max", "integer": true}, {"name", "kind": "date", "start": '
    '"YYYY-MM-DD", "end": "YYYY-MM-DD"} or {"name", "kind": "person", "attributes": '
    '["name", "city"], "locale": "en_US"}.'
)
CITIES = (
    "Lisbon",
    "Osaka",
    "Nairobi",
    "Toronto",
    "Melbourne",
    "Munich",
    "Bogotá",
    "Pune",
    "Lyon",
    "Austin",
)
_PLACES = ("city", "town", "location", "country", "region")
_NAMES = ("name", "full_name", "customer_name", "person_name", "customer")


def mock_proposals(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """What the mock proposes for a drafted schema: a person for a name field, a place
    category for a place field, a category over an enum, a range over a bounded integer;
    at most three."""
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(props, dict):
        return []
    found: list[dict[str, Any]] = []
    for name, node in props.items():
        if not isinstance(node, dict) or name == "label":
            continue
        lowered = name.lower()
        if lowered in _NAMES:
            found.append({"name": name, "kind": "person", "attributes": ["name"]})
        elif any(part in lowered for part in _PLACES) and node.get("type") == "string":
            found.append({"name": name, "kind": "category", "values": list(CITIES)})
        elif isinstance(node.get("enum"), list) and 1 < len(node["enum"]) <= 20:
            found.append({"name": name, "kind": "category", "values": list(node["enum"])})
        elif node.get("type") == "integer" and "minimum" in node and "maximum" in node:
            found.append(
                {
                    "name": name,
                    "kind": "number",
                    "min": node["minimum"],
                    "max": node["maximum"],
                    "integer": True,
                }
            )
        if len(found) == 3:
            break
    return found


_VALUES_HEAD = "Use these values for this record"


def asked_values(prompt: str) -> dict[str, Any]:
    """The variables' values a record prompt gives (``variables.prompt_lines``)."""
    import orjson

    head = prompt.find(_VALUES_HEAD)
    if head < 0:
        return {}
    values: dict[str, Any] = {}
    for line in prompt[head:].splitlines()[1:]:
        if not line.startswith("- ") or ": " not in line:
            break
        name, text = line[2:].split(": ", 1)
        try:
            values[name] = orjson.loads(text)
        except orjson.JSONDecodeError:
            values[name] = text
    return values


def follow_values(record: Any, prompt: str, schema: dict[str, Any]) -> None:
    """The mock gateway follows a record prompt's variables as a model would: a field of
    the record named like a variable takes its value, when the schema allows it there."""
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(record, dict) or not isinstance(props, dict):
        return
    for name, value in asked_values(prompt).items():
        node = props.get(name)
        if name not in record or not isinstance(node, dict):
            continue
        if isinstance(value, dict):  # a person: its attribute of the same name, or its name
            value = value.get(name, value.get("name"))
        if isinstance(node.get("enum"), list) and value not in node["enum"]:
            continue
        kind = node.get("type")
        fits = (
            (kind == "string" and isinstance(value, str))
            or (kind == "integer" and isinstance(value, int) and not isinstance(value, bool))
            or (kind == "number" and isinstance(value, int | float))
            or (kind is None and "enum" in node)
        )
        if fits:
            record[name] = value
