"""A draft is accepted only when it is a JSON Schema of a record (issue 14): an example
record is refused, redrafted with the reason (never the answer), and reported."""

from __future__ import annotations

from typing import Any

import pytest

from datagems.mock.server import MOCK_KEY
from tests.web.harness import LiveApp

BODY = {
    "title": "People",
    "totalRecords": 5,
    "description": "A person: full name, age, e-mail and city",
    "instructions": "Varied people.",
}


def test_an_example_record_drafted_instead_of_a_schema_is_refused_with_its_reason(
    live: LiveApp,
) -> None:
    assert live.mock_runner is not None
    mock = live.mock_runner.app[MOCK_KEY]
    client = live.login("alice")
    mock.recent.clear()
    mock.apply({"exampleDraft": True})
    try:
        answer = client.post("/api/tasks/schema", json=BODY)
    finally:
        mock.apply({"exampleDraft": False})
    assert answer.status_code == 502
    error = answer.json()["error"]
    assert "did not draft a valid schema" in error and "example record" in error
    asked = list(mock.recent)
    assert len(asked) == 3  # refused, redrafted with the reason, three times
    assert "A previous answer was refused: it is an example record" in asked[1]["lastMessage"]
    assert not any(r["assistantTurn"] for r in asked)  # the answer itself is never echoed


def test_a_good_draft_after_a_refused_one_reports_the_refusal(
    live: LiveApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert live.mock_runner is not None
    mock = live.mock_runner.app[MOCK_KEY]
    client = live.login("alice")
    answer_of = mock._answer
    calls: list[int] = []

    def example_first(*args: Any, **kwargs: Any) -> Any:  # then a real schema
        calls.append(1)
        mock.config.example_draft = len(calls) == 1
        return answer_of(*args, **kwargs)

    monkeypatch.setattr(mock, "_answer", example_first)
    try:
        answer = client.post("/api/tasks/schema", json=BODY)
    finally:
        mock.config.example_draft = False
    assert answer.status_code == 200, answer.text
    drafted = answer.json()
    assert drafted["failedAttempts"] == 1
    assert drafted["refusedDrafts"][0].startswith("the draft was refused: it is an example record")
    assert drafted["schema"]["properties"]
