"""What the user changed after drafting, and what they asked a redraft to change.

- **Changes to the form after the draft** (``DraftChanges``: title, records, description,
  instructions, dataset mode) are carried into the preview and the confirm over the draft's own
  values: a job drafted for 50 records and confirmed after the user typed 200 has 200
  (it had 50). The page asks before using a changed description or instructions with a
  schema drafted from the old ones (redraft, or keep the schema); the server takes what
  it is sent.
- **Feedback on a draft** goes into the next draft call with the schema it is about.
"""

from __future__ import annotations

from typing import Any

import orjson

from datagems.errors import BadRequest
from datagems.models import dataset_mode_flag
from datagems.web.bodies import DraftChanges

FEEDBACK_SCHEMA_CHARS = 6000  # the previous schema quoted in a redraft, at most


def apply_changes(draft: dict[str, Any], body: DraftChanges, max_records: int) -> dict[str, Any]:
    """``draft`` with the body's changed fields (a copy); ``BadRequest`` past the bounds."""
    changed = dict(draft)
    if body.total_records is not None:
        if not 1 <= body.total_records <= max_records:
            raise BadRequest(f"totalRecords must be between 1 and {max_records}")
        changed["totalRecords"] = body.total_records
    for name in ("title", "description", "instructions"):
        value = getattr(body, name)
        if value is not None:
            changed[name] = value
    if body.dataset_mode is not None:
        changed["datasetMode"] = dataset_mode_flag(body.dataset_mode)
    return changed


def with_feedback(
    messages: list[dict[str, str]], feedback: str | None, previous: dict[str, Any] | None
) -> list[dict[str, str]]:
    """The draft question with the user's feedback on the previous draft (and that draft's
    schema, so the model changes it rather than starting over)."""
    text = (feedback or "").strip()
    if not text:
        return messages
    *head, last = messages
    extra = [f"Feedback on the previous draft: {text}"]
    if previous:
        quoted = orjson.dumps(previous).decode()
        if len(quoted) <= FEEDBACK_SCHEMA_CHARS:
            extra.append(f"The previous draft was: {quoted}")
        extra.append("Change the previous draft as the feedback asks; keep the rest.")
    return [*head, {**last, "content": last["content"] + "\n" + "\n".join(extra)}]
