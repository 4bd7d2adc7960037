"""extract_json: tolerant of fences and prose, never inventing anything."""

from __future__ import annotations

import pytest

from datagems.errors import InferenceError
from datagems.inference import extract_json


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('  \n{"a": 1}\n ', {"a": 1}),
        ('\ufeff{"a": 1}', {"a": 1}),
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ('```\n{"a": 1}\n```', {"a": 1}),
        ('Here you go:\n```json\n{"a": [1, 2]}\n```\nHope it helps!', {"a": [1, 2]}),
        ('Sure! {"name": "Ana", "tags": ["x"]} Let me know.', {"name": "Ana", "tags": ["x"]}),
        ('Result: [{"a": 1}, {"a": 2}] done', [{"a": 1}, {"a": 2}]),
        ('<think>the user wants {json}</think>\n{"a": "b"}', {"a": "b"}),
        ('note {not json} then {"ok": true}', {"ok": True}),
        ('{"text": "a } inside { a string"}', {"text": "a } inside { a string"}),
        ('{"unicode": "ßü→"}', {"unicode": "ßü→"}),
        ("42", 42),
    ],
)
def test_extract_json_finds_the_json_value(text, expected):
    assert extract_json(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "no json here at all",
        '{"a": 1',  # truncated: not repaired
        "{'a': 1}",  # python dict: not JSON
        '```json\n{"a": }\n```',
        "{name: Ana}",
    ],
)
def test_extract_json_refuses_text_without_json_as_invalid_json(text):
    with pytest.raises(InferenceError) as caught:
        extract_json(text)
    assert caught.value.reason == "invalid_json"
    assert caught.value.retryable


def test_extract_json_never_adds_or_renames_fields():
    text = 'prefix {"b": 2, "a": null} suffix'
    assert extract_json(text) == {"b": 2, "a": None}


def test_extract_json_gives_up_quickly_on_many_false_starts():
    text = "{" * 5000 + " nothing"
    with pytest.raises(InferenceError):
        extract_json(text)


# --------------------------------------------------------------------------- honest


@pytest.mark.parametrize(
    "text",
    [
        # a schema-ish answer cut off: its inner list and map are fragments, never the answer
        'Here is the record: {"required": ["full_name"], "properties": {"a": {"type": "str',
        '{"full_name": "Ana", "tags": ["x"',
    ],
)
def test_a_fragment_of_a_cut_off_answer_is_never_taken(text):
    with pytest.raises(InferenceError) as caught:
        extract_json(text)
    assert caught.value.reason == "invalid_json"
    assert "not complete JSON" in caught.value.message


def test_prose_with_a_quoted_list_before_the_object_gives_the_object():
    text = 'Fields ["full_name"] are required. {"full_name": "Ana Lima"}'
    assert extract_json(text) == {"full_name": "Ana Lima"}


def test_raw_control_characters_inside_strings_are_repaired():
    assert extract_json('{"city": "New\nYork", "note": "a\tb"}') == {
        "city": "New\nYork",
        "note": "a\tb",
    }
    assert extract_json('Sure: {"city": "São\nPaulo"} ok') == {"city": "São\nPaulo"}


def test_an_answer_with_no_json_says_it_is_not_json():
    with pytest.raises(InferenceError) as caught:
        extract_json("I am sorry, I cannot help with that.")
    assert caught.value.message.startswith("the answer is not JSON")
