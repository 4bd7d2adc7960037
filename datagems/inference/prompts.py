"""The chat messages DataGems sends: draft a schema, make one record, repair an answer.

Record prompts vary by index so N calls do not return N copies of one record: each carries
its position, a seed and a diversity hint, all derived deterministically from
``(job id, index)`` (``record_seed``), so a resumed record asks the same question. A
"retry failed records" round ``r`` derives fresh ones from ``(job id, index, r)``, and every
attempt of a record gets its own sampling seed (``call_seed``): asking a model the same
question with the same seed gets the same answer back.

Retries never echo a rejected answer (a small model copies it back byte for byte): a retry
is a fresh sample of the same question, and after a schema violation the question gains
one short line naming what was wrong (``feedback_messages``), never the answer itself.
In dataset mode ``classification`` / ``labeled`` the record must carry a ``label`` field,
classes are suggested round-robin over the schema's label enum (balanced classes), and the
model is told not to leak the label into the other fields.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import orjson

from datagems.quality.proposals import DRAFT_ASK

if TYPE_CHECKING:
    from datagems.models import JobDetails
    from datagems.quality.conditioning import Conditioning

LABEL_MODES = frozenset({"classification", "labeled", "labelled"})
MAX_ANSWER_ECHO = 8000
MAX_ERROR_ECHO = 2000

DRAFT_SYSTEM = (
    "You design JSON Schemas (draft 2020-12) for synthetic datasets. Given a description of "
    "ONE record, answer with ONLY a JSON object that is the schema of one record: "
    '"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", '
    '"properties" with a type and a short "description" for each field, a "required" list, '
    'and "additionalProperties": false. Use enum, minimum/maximum, minLength/maxLength, '
    "format (email, date, date-time, uri, uuid) and minItems/maxItems where they help. "
    "Use only local $ref (#/$defs/...). No prose, no code fences."
)

RECORD_SYSTEM = (
    "You generate realistic synthetic data. Answer with ONLY one JSON object: one record "
    "that satisfies the given JSON Schema exactly (every required field, the right types, "
    "enums, bounds and formats, no extra fields when additionalProperties is false). "
    "No prose, no code fences, no comments."
)

TONES = (
    "typical and common",
    "unusual but plausible",
    "at the low end of the ranges",
    "at the high end of the ranges",
    "from a small town or niche context",
    "from a large, international context",
    "detailed and specific",
    "terse and minimal",
    "recent (dates in the last year)",
    "older (dates several years back)",
    "with a positive sentiment",
    "with a negative or critical sentiment",
    "with a neutral, factual sentiment",
    "edge-of-normal values (still valid)",
)
ANGLES = (
    "vary names and places away from the most common choices",
    "pick a region of the world other than North America",
    "prefer less frequent enum values",
    "use different wording than an obvious first guess",
    "make numbers non-round",
    "favour a different age group or size than usual",
    "use a different industry or domain flavour",
    "choose an uncommon but realistic combination of fields",
)


def record_seed(job_id: str, index: int, round_: int = 0) -> int:
    """A 31-bit seed for record ``index`` of job ``job_id`` (stable across processes);
    retry round ``round_`` > 0 gets a fresh one."""
    text = f"{job_id}:{index}" if not round_ else f"{job_id}:{index}:round{round_}"
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def call_seed(record: int, attempt: int) -> int:
    """The sampling seed of ``attempt`` (1-based) of a record whose seed is ``record``."""
    return (record + (attempt - 1) * 0x9E3779B1) & 0x7FFFFFFF


def diversity_hint(job_id: str, index: int, round_: int = 0) -> str:
    seed = record_seed(job_id, index, round_)
    return f"{TONES[seed % len(TONES)]}; {ANGLES[(seed // len(TONES)) % len(ANGLES)]}"


def is_label_mode(dataset_mode: str | bool | None) -> bool:
    """``True`` is the original's (and the stored) form; a mode name comes from a form."""
    if isinstance(dataset_mode, bool):
        return dataset_mode
    return bool(dataset_mode) and str(dataset_mode).strip().lower() in LABEL_MODES


def _label_values(schema: dict[str, Any]) -> list[Any]:
    properties = schema.get("properties") if isinstance(schema, dict) else None
    label = properties.get("label") if isinstance(properties, dict) else None
    if isinstance(label, dict):
        if isinstance(label.get("enum"), list):
            return list(label["enum"])
        if "const" in label:
            return [label["const"]]
    return []


def schema_draft_messages(
    *,
    title: str,
    description: str,
    instructions: str,
    total_records: int,
    dataset_mode: str | bool | None,
) -> list[dict[str, str]]:
    """The one call that drafts the schema of a record."""
    lines = [
        f"Dataset title: {title.strip() or '(untitled)'}",
        f"One record describes: {description.strip() or '(not given)'}",
    ]
    if instructions.strip():
        lines.append(f"Instructions for the data: {instructions.strip()}")
    lines.append(f"The dataset will have {total_records} records.")
    if is_label_mode(dataset_mode):
        lines.append(
            "Dataset mode: classification. The schema MUST have a required string property "
            '"label" holding the class of the record, with an "enum" of the class names '
            "(take them from the description and instructions). The other properties are "
            "the features; none of them may repeat or name the label."
        )
    elif dataset_mode:
        lines.append(f"Dataset mode: {dataset_mode}.")
    lines.append("Answer with the JSON Schema of ONE record only.")
    return [
        {"role": "system", "content": f"{DRAFT_SYSTEM} {DRAFT_ASK}"},
        {"role": "user", "content": "\n".join(lines)},
    ]


_HEADS: dict[str, tuple[JobDetails, str]] = {}
MAX_HEADS = 64


def record_head(details: JobDetails) -> str:
    """The fixed part of every record prompt of a job (dataset, instructions, schema text),
    built once per job: kept for the ``details`` object it was built from, which a job's
    records share (a new object, say a job's details loaded again, builds it anew)."""
    cached = _HEADS.get(details.id)
    if cached is not None and cached[0] is details:
        return cached[1]
    lines = [
        f"Dataset: {details.title.strip() or '(untitled)'}",
        f"One record describes: {details.description.strip() or '(not given)'}",
    ]
    if details.instructions.strip():
        lines.append(f"Instructions: {details.instructions.strip()}")
    lines.append("JSON Schema of one record:")
    lines.append(orjson.dumps(details.json_schema or {}).decode())
    head = "\n".join(lines)
    if len(_HEADS) >= MAX_HEADS:
        _HEADS.clear()
    _HEADS[details.id] = (details, head)
    return head


def record_messages(
    *,
    details: JobDetails,
    index: int,
    total: int,
    round_: int = 0,
    conditioning: Conditioning | None = None,
) -> list[dict[str, str]]:
    """The call for record ``index`` (0-based global index) of ``total`` (in retry round
    ``round_``: another seed and hint), with the record's seed row and variable values
    (``conditioning``: the same in every round) when the job declares them."""
    seed = record_seed(details.id, index, round_)
    schema = details.json_schema or {}
    lines = [record_head(details)]
    lines.append(f"This is record {index + 1} of {total}. Variation seed: {seed}.")
    lines.append(f"Diversity hint: make this record {diversity_hint(details.id, index, round_)}.")
    lines.append("Do not copy earlier records; every record should be distinct.")
    if conditioning is not None:
        lines += conditioning.prompt_lines(index)
    if is_label_mode(details.dataset_mode):
        labels = _label_values(schema)
        lines.append(
            'The record MUST include the field "label" with the class of this record'
            + (f", one of {orjson.dumps(labels).decode()}" if labels else "")
            + "."
        )
        if labels:
            target = labels[index % len(labels)]
            lines.append(f"Use the label {orjson.dumps(target).decode()} for this record.")
        lines.append(
            "Decide the label first, then write the other fields so they are consistent with "
            "it, but do NOT leak the label: no other field may contain, name, or paraphrase "
            "the label value."
        )
    lines.append("Answer with the JSON object only.")
    return [
        {"role": "system", "content": RECORD_SYSTEM},
        {"role": "user", "content": "\n".join(lines)},
    ]


def repair_messages(
    previous: list[dict[str, str]], answer: str, error: str
) -> list[dict[str, str]]:
    """``previous`` + the rejected answer + the validation error, asking for a fixed answer."""
    shown = answer if len(answer) <= MAX_ANSWER_ECHO else answer[:MAX_ANSWER_ECHO] + "…"
    reason = error if len(error) <= MAX_ERROR_ECHO else error[:MAX_ERROR_ECHO] + "…"
    return [
        *previous,
        {"role": "assistant", "content": shown.strip() or "(empty answer)"},
        {
            "role": "user",
            "content": (
                f"That answer was rejected: {reason.strip() or 'it was not valid'}\n"
                "Answer again with ONLY one corrected JSON object that satisfies the schema "
                "(all required fields, right types, no extra fields). No prose, no code fences."
            ),
        },
    ]


MAX_FEEDBACK = 300


def feedback_messages(base: list[dict[str, str]], problems: str) -> list[dict[str, str]]:
    """``base`` (the record's own question) with one short line saying what a previous
    answer got wrong: the errors only, never the answer (a small model copies it back)."""
    shown = " ".join(problems.split())
    shown = shown if len(shown) <= MAX_FEEDBACK else shown[:MAX_FEEDBACK] + "…"
    *head, last = base
    return [
        *head,
        {
            **last,
            "content": (
                f"{last['content']}\nA previous answer was rejected ({shown}); avoid that mistake."
            ),
        },
    ]
