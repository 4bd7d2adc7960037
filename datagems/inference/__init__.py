"""Inference: the providers (Ratio1 gateway, OpenAI-compatible), prompts, structured output.

The engine builds one provider per job and awaits ``acomplete`` on its call loop; the web
layer calls ``complete`` (drafts, previews) from a worker thread;
``extract_json`` pulls the JSON out of the answer text; ``prompts`` builds the messages.
"""

from datagems.inference.extract import extract_json
from datagems.inference.providers import (
    CREATE_CHAT_COMPLETION_PATH,
    INFERENCE_BASE_URL,
    OPENAI_CHAT_PATH,
    Completion,
    GatewayProvider,
    OpenAIProvider,
    Provider,
    list_models,
    redact,
)

__all__ = [
    "CREATE_CHAT_COMPLETION_PATH",
    "INFERENCE_BASE_URL",
    "OPENAI_CHAT_PATH",
    "Completion",
    "GatewayProvider",
    "OpenAIProvider",
    "Provider",
    "extract_json",
    "list_models",
    "redact",
]
