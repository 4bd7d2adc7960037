"""Settings show what a profile's server was found to accept (issue 14)."""

from __future__ import annotations

from datagems.inference.capabilities import (
    CapabilitiesRepo,
    Capability,
    endpoint_key,
    endpoint_of,
)
from tests.web.harness import LiveApp


def test_settings_show_the_structured_output_a_profiles_server_takes(live: LiveApp) -> None:
    client = live.login("bob")
    saved = client.post(
        "/api/user/settings",
        json={"name": "laptop", "baseUrl": "http://127.0.0.1:9/v1", "model": "smol"},
    )
    assert saved.status_code == 200, saved.text
    shown = next(
        p for p in client.get("/api/user/settings").json()["profiles"] if p["name"] == "laptop"
    )
    assert "structuredOutput" not in shown  # learned at first use

    assert live.services is not None
    endpoint = endpoint_of("http://127.0.0.1:9/v1", shown.get("path") or "")
    CapabilitiesRepo(live.services.cstore).put(
        endpoint_key(endpoint, "smol"), Capability(form="json_schema_strict")
    )
    shown = next(
        p for p in client.get("/api/user/settings").json()["profiles"] if p["name"] == "laptop"
    )
    assert shown["structuredOutput"] == "json_schema (strict)"
