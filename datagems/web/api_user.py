"""``/api/user/*`` (inference profiles, model listing) and ``/api/admin/accounts``."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from aiohttp import web

from datagems.accounts.removal import delete_account
from datagems.errors import BadRequest, Conflict, NotFound
from datagems.inference.providers import list_models
from datagems.models import InferenceProfile, UserSettings
from datagems.ssrf import UnresolvedHost, check_public_url
from datagems.web.auth import caller, require_admin
from datagems.web.bodies import (
    AccountDeleteBody,
    ModelsBody,
    ProfileBody,
    ProfileDeleteBody,
    parse_body,
    read_body,
)
from datagems.web.keys import ACCOUNTS, READ_CACHE, SERVICES

logger = logging.getLogger(__name__)
MASK = "••••"


def mask_key(key: str | None) -> str | None:
    """A key as the user may see it again: never more than its last four characters."""
    if not key:
        return None
    return MASK + key[-4:] if len(key) >= 12 else MASK


def masked(settings: UserSettings, limit: int) -> dict[str, Any]:
    profiles = []
    for profile in settings.profiles:
        shown = profile.wire()
        shown.pop("apiKey", None)
        shown["apiKeyMasked"] = mask_key(profile.api_key)
        shown["hasApiKey"] = bool(profile.api_key)
        shown["active"] = profile.id == settings.active_profile_id
        profiles.append(shown)
    return {
        "profiles": profiles,
        "activeProfileId": settings.active_profile_id,
        "maxProfiles": limit,
    }


def same_url(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def with_capabilities(services: Any, shown: dict[str, Any]) -> None:
    """Add to each shown profile what its server was found to accept (``structuredOutput``:
    the form's label, learned at first use; absent until then)."""
    from datagems.inference.capabilities import CapabilitiesRepo, endpoint_key, endpoint_of

    repo = CapabilitiesRepo(services.cstore)
    for profile in shown["profiles"]:
        endpoint = endpoint_of(profile.get("baseUrl") or "", profile.get("path") or "")
        found = repo.get(endpoint_key(endpoint, profile.get("model")))
        if found is not None:
            profile["structuredOutput"] = found.label


async def _checked_url(request: web.Request, url: str) -> str:
    allow = request.app[SERVICES].settings.allow_private_urls
    return await asyncio.to_thread(check_public_url, url, allow_private=allow)


async def _saved_url(request: web.Request, url: str) -> tuple[str, str | None]:
    """A profile's URL as stored, and a warning when its host does not resolve now: the
    profile is kept (the name may exist only where the records will run, or the resolver
    is down), and every call checks the URL again, addresses included (``ssrf``)."""
    try:
        return await _checked_url(request, url), None
    except UnresolvedHost as exc:
        warning = (
            f"{exc.message.removeprefix('URL refused: ')}: saved anyway; "
            "calls to it fail until the name resolves to a public address"
        )
        return exc.url, warning


async def get_settings(request: web.Request) -> web.Response:
    who = caller(request)
    services = request.app[SERVICES]
    current = await asyncio.to_thread(services.user_settings.get, who.username)
    shown = masked(current, services.settings.max_external_api_configs)
    await asyncio.to_thread(with_capabilities, services, shown)
    return web.json_response(shown)


async def upsert_settings(request: web.Request) -> web.Response:
    """Create or update a profile (``id`` names an existing one), or just activate one."""
    who = caller(request)
    services = request.app[SERVICES]
    body = await read_body(request, ProfileBody)
    current = await asyncio.to_thread(services.user_settings.get, who.username)
    limit = services.settings.max_external_api_configs
    profile = next((p for p in current.profiles if body.id and p.id == body.id), None)
    only_activate = (
        body.set_active
        and profile is not None
        and not any((body.name, body.base_url, body.api_key, body.model, body.path))
        and not body.model_fields_set
        & {"temperature", "max_tokens", "price_in_per_million", "price_out_per_million"}
    )
    warnings: list[str] = []
    if body.id and profile is None:
        raise NotFound("inference profile not found")
    if not only_activate:
        if profile is None:
            if len(current.profiles) >= limit:
                raise Conflict(f"at most {limit} inference profiles; delete one first")
            if not body.base_url:
                raise BadRequest("baseUrl is required")
            profile = InferenceProfile(id=secrets.token_hex(6))
            current.profiles.append(profile)
        new_key = body.api_key if body.api_key and not body.api_key.startswith(MASK) else None
        if body.base_url:
            base_url, warning = await _saved_url(request, body.base_url)
            if warning:
                warnings.append(warning)
            if profile.api_key and new_key is None and not same_url(base_url, profile.base_url):
                # the stored key was given for the old address: never send it elsewhere
                raise BadRequest("enter the API key again to use it with a new baseUrl")
            profile.base_url = base_url
        if body.name is not None:
            profile.name = body.name
        if body.model is not None:
            profile.model = body.model or None
        if body.path is not None:
            path = body.path or "/chat/completions"
            profile.path = path if path.startswith("/") else "/" + path
        if new_key is not None:
            profile.api_key = new_key
        for price in ("price_in_per_million", "price_out_per_million"):  # the report's cost
            if price in body.model_fields_set:
                setattr(profile, price, getattr(body, price))
        if "temperature" in body.model_fields_set:
            profile.temperature = body.temperature
        if "max_tokens" in body.model_fields_set:
            profile.max_tokens = body.max_tokens
        if not profile.name:
            profile.name = profile.base_url
    if body.set_active:
        current.active_profile_id = profile.id
    await asyncio.to_thread(services.user_settings.put, who.username, current)
    logger.info("%s saved inference profile %s", who.username, profile.id)
    answer = masked(current, limit)
    if warnings:
        answer["warnings"] = warnings
    return web.json_response(answer)


async def delete_settings(request: web.Request) -> web.Response:
    who = caller(request)
    services = request.app[SERVICES]
    if request.query.get("id"):
        body = parse_body(ProfileDeleteBody, {"id": request.query["id"]})
    else:
        body = await read_body(request, ProfileDeleteBody)
    current = await asyncio.to_thread(services.user_settings.get, who.username)
    kept = [p for p in current.profiles if p.id != body.id]
    if len(kept) == len(current.profiles):
        raise NotFound("inference profile not found")
    current.profiles = kept
    if current.active_profile_id == body.id:
        current.active_profile_id = None
    await asyncio.to_thread(services.user_settings.put, who.username, current)
    return web.json_response(masked(current, services.settings.max_external_api_configs))


async def user_models(request: web.Request) -> web.Response:
    who = caller(request)
    services = request.app[SERVICES]
    body = await read_body(request, ModelsBody)
    if body.profile_id:
        current = await asyncio.to_thread(services.user_settings.get, who.username)
        profile = next((p for p in current.profiles if p.id == body.profile_id), None)
        if profile is None:
            raise NotFound("inference profile not found")
        base_url, api_key = profile.base_url, profile.api_key
    elif body.base_url:
        base_url, api_key = body.base_url, body.api_key
    else:
        raise BadRequest("give profileId, or baseUrl and apiKey")
    base_url = await _checked_url(request, base_url)
    models = await asyncio.to_thread(list_models, base_url, api_key)
    return web.json_response({"models": models})


# --------------------------------------------------------------------------- admin


async def admin_accounts(request: web.Request) -> web.Response:
    """Every account but the deleted ones (as the original lists them)."""
    require_admin(request)
    services = request.app[SERVICES]
    accounts = await asyncio.to_thread(request.app[ACCOUNTS].all)
    index = await asyncio.to_thread(services.users.all)
    listed = []
    for account in accounts:
        if account.deleted:
            continue
        entry = index.get(account.username)
        listed.append(
            {
                "username": account.username,
                "role": account.role,
                "createdAt": account.created_at,
                "email": entry.email if entry else (account.metadata or {}).get("email"),
                "name": entry.name if entry else (account.metadata or {}).get("name"),
                "country": entry.country if entry else (account.metadata or {}).get("country"),
            }
        )
    listed.sort(key=lambda a: (a["role"] != "admin", a["username"]))
    return web.json_response({"accounts": listed})


async def admin_delete_account(request: web.Request) -> web.Response:
    """Soft-delete an account (``purge: true``: with its data, keys first)."""
    who = require_admin(request)
    body = await read_body(request, AccountDeleteBody)
    username = body.username.strip().lower()
    if username == who.username:
        raise BadRequest("you cannot delete your own account")
    accounts = request.app[ACCOUNTS]
    found = await asyncio.to_thread(accounts.get, username)
    if found is None or (found.deleted and not body.purge):
        raise NotFound("account not found")
    try:
        removed = await asyncio.to_thread(
            delete_account,
            request.app[SERVICES],
            accounts,
            username,
            who.username,
            purge=bool(body.purge),
        )
    finally:
        request.app[READ_CACHE].users_changed()  # its sessions end here at once
    logger.info(
        "%s %s account %s", who.username, "purged" if removed.purged else "deleted", username
    )
    answer: dict[str, Any] = {"ok": True}  # the original's answer
    if removed.purged:
        answer.update(
            purged=True, jobsRemoved=removed.jobs_removed, jobsCancelled=removed.jobs_cancelled
        )
    return web.json_response(answer)
