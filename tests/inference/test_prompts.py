"""Prompts: drafts, per-index record prompts, label rules, repair conversations."""

from __future__ import annotations

import orjson

from datagems.inference.prompts import (
    record_messages,
    record_seed,
    repair_messages,
    schema_draft_messages,
)
from datagems.models import JobDetails

SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string"},
        "label": {"type": "string", "enum": ["spam", "ham"]},
    },
    "required": ["text", "label"],
}


def details(mode: str | None = None, job_id: str = "job-1") -> JobDetails:
    return JobDetails(
        id=job_id,
        owner="ana",
        title="SMS",
        description="one SMS message",
        instructions="English only",
        schema=SCHEMA,
        dataset_mode=mode,
    )


def user_text(messages: list[dict[str, str]]) -> str:
    return messages[-1]["content"]


def test_every_message_has_a_role_and_non_empty_string_content():
    for messages in (
        schema_draft_messages(
            title="t", description="d", instructions="", total_records=3, dataset_mode=None
        ),
        record_messages(details=details(), index=0, total=3),
        repair_messages(record_messages(details=details(), index=0, total=3), "", ""),
    ):
        for message in messages:
            assert message["role"] in ("system", "user", "assistant")
            assert isinstance(message["content"], str) and message["content"].strip()


def test_the_draft_prompt_carries_title_description_instructions_and_count():
    text = user_text(
        schema_draft_messages(
            title="Reviews",
            description="a product review",
            instructions="mostly positive",
            total_records=50,
            dataset_mode=None,
        )
    )
    for part in ("Reviews", "a product review", "mostly positive", "50"):
        assert part in text
    assert "label" not in text


def test_the_draft_prompt_in_classification_mode_requires_a_label_property():
    text = user_text(
        schema_draft_messages(
            title="SMS",
            description="spam or ham",
            instructions="",
            total_records=10,
            dataset_mode="classification",
        )
    )
    assert '"label"' in text and "enum" in text


def test_record_prompts_vary_by_index_with_position_seed_and_hint():
    prompts = [user_text(record_messages(details=details(), index=i, total=40)) for i in range(40)]
    assert len(set(prompts)) == 40
    assert "record 1 of 40" in prompts[0] and "record 40 of 40" in prompts[39]
    assert f"Variation seed: {record_seed('job-1', 7)}" in prompts[7]
    hints = {line for p in prompts for line in p.splitlines() if line.startswith("Diversity hint")}
    assert len(hints) >= 20


def test_record_prompts_are_deterministic_per_job_and_index():
    assert record_messages(details=details(), index=5, total=9) == record_messages(
        details=details(), index=5, total=9
    )
    assert record_messages(details=details(job_id="a"), index=5, total=9) != record_messages(
        details=details(job_id="b"), index=5, total=9
    )
    assert record_seed("a", 1) == record_seed("a", 1) != record_seed("a", 2)


def test_record_prompts_carry_the_schema():
    text = user_text(record_messages(details=details(), index=0, total=1))
    assert orjson.dumps(SCHEMA).decode() in text


def test_labeled_mode_requires_the_label_and_forbids_leaking_it():
    for mode in ("classification", "labeled"):
        text = user_text(record_messages(details=details(mode), index=0, total=4))
        assert '"label"' in text
        assert '["spam","ham"]' in text
        assert "do NOT leak the label" in text


def test_labeled_mode_balances_classes_round_robin():
    wanted = [
        user_text(record_messages(details=details("classification"), index=i, total=4))
        for i in range(4)
    ]
    assert ['"spam"' in w.split("Use the label ")[1].split()[0] for w in wanted] == [
        True,
        False,
        True,
        False,
    ]


def test_plain_mode_says_nothing_about_labels():
    text = user_text(record_messages(details=details(None), index=0, total=4))
    assert "leak" not in text and "Use the label" not in text


def test_repair_feeds_back_the_answer_and_the_validation_error():
    previous = record_messages(details=details(), index=2, total=3)
    repaired = repair_messages(previous, '{"text": 1}', "/text: 1 is not of type 'string'")
    assert repaired[: len(previous)] == previous
    assert repaired[-2] == {"role": "assistant", "content": '{"text": 1}'}
    assert repaired[-1]["role"] == "user"
    assert "/text: 1 is not of type 'string'" in repaired[-1]["content"]
    assert previous == record_messages(details=details(), index=2, total=3)  # not mutated


def test_a_jobs_record_prompts_share_one_fixed_part_built_once_and_equal_to_a_fresh_one():
    job = details()
    first, second = (user_text(record_messages(details=job, index=i, total=9)) for i in (0, 1))
    again = details()  # the same job's details loaded anew: its own head, the same text
    fresh = user_text(record_messages(details=again, index=0, total=9))
    assert first == fresh
    head = first.split("\nThis is record")[0]
    assert second.startswith(head + "\nThis is record 2 of 9.")
    assert head.endswith("JSON Schema of one record:\n" + orjson.dumps(SCHEMA).decode())
    renamed = details(job_id="job-1").model_copy(update={"title": "Texts"})
    assert user_text(record_messages(details=renamed, index=0, total=9)).startswith(
        "Dataset: Texts"
    )
