"""The mock's schema drafts follow the description's own nouns, and a redraft follows
the user's feedback (issue 16: "incident reports for a hospital pharmacy" drafted a
support ticket, and before that a customer)."""

from __future__ import annotations

import random

import pytest

from datagems.mock.drafts import draft_schema
from datagems.schema.check import check_schema
from datagems.web.draft_edits import with_feedback

PHARMACY = (
    "Dataset title: Pharmacy incidents\n"
    "One record describes: incident reports for a hospital pharmacy\n"
    "Instructions for the data: Include what happened and how severe it was.\n"
    "The dataset will have 50 records."
)


@pytest.mark.parametrize("seed", range(8))
def test_a_hospital_pharmacy_incident_report_drafts_incident_fields(seed: int) -> None:
    drafted = draft_schema(PHARMACY, random.Random(seed))
    names = set(drafted["properties"])
    assert {"incident_type", "severity", "occurred_at", "what_happened"} <= names
    assert {"medication", "ward"} <= names  # the pharmacy and the hospital it names
    assert not names & {"full_name", "email", "subject", "priority"}  # no customer, no ticket
    check_schema(drafted)


def test_a_redraft_changes_the_previous_draft_as_the_feedback_asks() -> None:
    previous = draft_schema(PHARMACY, random.Random(1))
    question = [{"role": "user", "content": PHARMACY}]
    asked = with_feedback(
        question, "add a lot number; drop the ward and add a score from 1 to 5", previous
    )
    redrafted = draft_schema(asked[0]["content"], random.Random(2))
    assert "ward" not in redrafted["properties"] and "ward" not in redrafted["required"]
    assert redrafted["properties"]["lot_number"]["type"] == "string"
    assert redrafted["properties"]["score"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 5,
        "description": "Score",
    }
    kept = [n for n in previous["properties"] if n != "ward"]
    assert list(redrafted["properties"])[: len(kept)] == kept  # the rest as it was
    check_schema(redrafted)
