"""The mock LLM gateway (``datagems mock-llm``): a real HTTP server on loopback with
latency and fault injection, speaking the Ratio1 gateway's and OpenAI's chat completions.

- ``server``: the aiohttp app, its knobs (``/config``) and counters (``/stats``);
- ``modes``: behaviours seen in real servers, switched on one by one;
- ``records``: records that satisfy a JSON Schema (``RecordFactory``);
- ``vocabulary``: plausible values by property name;
- ``drafts``: a schema drafted from the words of a prompt.
"""
