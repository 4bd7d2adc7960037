"""One typed, frozen settings object, built from the environment once at start.

``Settings.from_env(os.environ)`` parses every variable of the original DataGems (with its
legacy fallbacks) and ours (``DATAGEN_*``). A bad value raises ``SettingsError`` with one
line naming the variable and what is wrong; the CLI prints it and exits 2.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from pydantic import SecretStr

from datagems.errors import SettingsError

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


class _Env:
    """Reads variables with fallbacks; every parser names the variable it read."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def raw(self, *names: str) -> tuple[str, str] | None:
        for name in names:
            value = self.env.get(name)
            if value is not None and value.strip() != "":
                return name, value.strip()
        return None

    def str(self, *names: str, default: str | None = None) -> str | None:
        found = self.raw(*names)
        return found[1] if found else default

    def int(self, *names: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
        found = self.raw(*names)
        if not found:
            return default
        name, value = found
        try:
            number = int(value)
        except ValueError:
            raise SettingsError(f"{name}={value} is not a whole number") from None
        if number < minimum or (maximum is not None and number > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise SettingsError(f"{name}={value} must be {bound}")
        return number

    def float(self, *names: str, default: float, minimum: float = 0.0) -> float:
        found = self.raw(*names)
        if not found:
            return default
        name, value = found
        try:
            number = float(value)
        except ValueError:
            raise SettingsError(f"{name}={value} is not a number") from None
        if not math.isfinite(number) or number < minimum:
            raise SettingsError(f"{name}={value} must be a finite number >= {minimum}")
        return number

    def bool(self, *names: str, default: bool) -> bool:
        found = self.raw(*names)
        if not found:
            return default
        name, value = found
        if value.lower() in TRUE_WORDS:
            return True
        if value.lower() in FALSE_WORDS:
            return False
        raise SettingsError(f"{name}={value} is not a boolean (use true or false)")

    def url(self, *names: str) -> str | None:
        found = self.raw(*names)
        if not found:
            return None
        name, value = found
        return check_url(name, value)

    def secret(self, *names: str, minimum: int = 0) -> SecretStr | None:
        """A secret; with ``minimum``, refused when shorter or a placeholder."""
        found = self.raw(*names)
        if not found:
            return None
        if minimum:
            check_secret(found[0], found[1], minimum)
        return SecretStr(found[1])


# Values copied from examples: a secret equal to one of these (or containing one of the
# marked words) is refused at start. The README's own examples are here.
PLACEHOLDER_SECRETS = frozenset(
    {
        "change-me",
        "change-me-too",
        "changeme",
        "change_me",
        "secret",
        "password",
        "pass",
        "test",
        "example",
        "default",
        "datagems",
        "admin",
        "your-secret",
        "your-secret-here",
        "replace-me",
        "s3cr3t",
    }
)
PLACEHOLDER_WORDS = ("changeme", "change-me", "change_me", "replace-me", "your-secret", "xxxx")
MIN_SESSION_SECRET_CHARS = 32  # HS256 wants a key of at least 256 bits
MIN_PEPPER_CHARS = 16
MIN_ADMIN_PASSWORD_CHARS = 12
GENERATE_HINT = "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"


def check_secret(name: str, value: str, minimum: int) -> None:
    """``SettingsError`` for a secret shorter than ``minimum`` or copied from an example.
    The message names the variable, never the value."""
    lowered = value.strip().lower()
    placeholder = (
        lowered in PLACEHOLDER_SECRETS
        or any(word in lowered for word in PLACEHOLDER_WORDS)
        or len(set(lowered)) <= 2
    )
    if placeholder:
        raise SettingsError(f"{name} is a placeholder value, not a secret; {GENERATE_HINT}")
    if len(value) < minimum:
        raise SettingsError(
            f"{name} is {len(value)} characters; at least {minimum} are needed; {GENERATE_HINT}"
        )


def check_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{name}={value} is not an http(s) URL with a host")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise SettingsError(f"{name}={value} has a bad port") from None
    return value.rstrip("/")


def host_port_url(
    env: _Env, host_names: tuple[str, ...], port_names: tuple[str, ...]
) -> str | None:
    host = env.str(*host_names)
    port = env.int(*port_names, default=0, minimum=0, maximum=65535)
    if not host or not port:
        return None
    if ":" in host and not host.startswith("["):
        try:
            ipaddress.IPv6Address(host)
            host = f"[{host}]"
        except ValueError:
            pass
    return check_url(host_names[0], f"http://{host}:{port}")


def parse_peer_list(name: str, value: str) -> list[str]:
    """A JSON array or a comma-separated list; wrapping quotes stripped, blanks dropped."""
    text = value.strip()
    if text.startswith("["):
        try:
            items = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise SettingsError(f"{name}={value} is not a valid JSON array") from None
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise SettingsError(f"{name}={value} must be an array of strings")
    elif text.startswith("{"):
        raise SettingsError(f"{name}={value} must be a JSON array or a comma-separated list")
    else:
        items = text.split(",")
    peers: list[str] = []
    for item in items:
        peer = item.strip().strip("'\"").strip()
        if peer and peer not in peers:
            peers.append(peer)
    if not peers:
        raise SettingsError(f"{name}={value} names no peer")
    return peers


def _threshold(env: _Env) -> float:
    """``DATAGEN_NEAR_DUPLICATE_THRESHOLD``: a similarity in (0, 1]."""
    value = env.float("DATAGEN_NEAR_DUPLICATE_THRESHOLD", default=0.8, minimum=0.0)
    if not 0.0 < value <= 1.0:
        raise SettingsError(f"DATAGEN_NEAR_DUPLICATE_THRESHOLD={value} must be in (0, 1]")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    # storage
    data_dir: Path = Path(".datagems")
    cstore_url: str | None = None  # None: embedded SQLite in data_dir
    r1fs_url: str | None = None  # None: embedded folder in data_dir
    chainstore_peers: tuple[str, ...] = ("local",)
    host_addr: str = "local"
    local_cache_dir: Path = Path(".datagems/cache")
    store_timeout_seconds: float = 35.0
    export_stall_seconds: float = 30.0
    r1fs_secret: SecretStr | None = None
    log_r1fs_calls: bool = False
    # auth
    auth_hkey: str = "datagen:auth"
    auth_secret: SecretStr | None = None
    bootstrap_admin_password: SecretStr | None = None
    session_secret: SecretStr | None = None
    cookie_secure: bool = False
    # web
    app_host: str = "127.0.0.1"
    app_port: int = 3000
    public_url: str | None = None  # None: http://<app host>:<app port>
    max_records_per_job: int = 200
    max_external_api_configs: int = 10
    active_poll_seconds: int = 10
    idle_poll_seconds: int = 30
    show_failures: bool = True
    ui_test_preset: dict[str, Any] | None = None
    allow_private_urls: bool = False
    max_body_bytes: int = 1_048_576
    seed_max_bytes: int = 2_097_152  # an uploaded seed file (CSV / JSONL) over this is 413
    register_window_seconds: int = 900
    register_max_per_ip: int = 10
    register_max_per_email: int = 3
    resend_window_seconds: int = 900
    resend_max_per_ip: int = 5
    resend_max_per_email: int = 2
    login_window_seconds: int = 900
    login_max_failures_per_account: int = 10
    login_max_failures_per_address: int = 100
    task_window_seconds: int = 3600
    task_max_per_window: int = 30
    max_running_jobs_per_user: int = 3
    max_active_records_per_user: int = 10_000
    admin_limits_exempt: bool = True
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str | None = None
    # inference
    inference_base_url: str | None = None  # None: the built-in mock gateway
    inference_token: SecretStr | None = None
    inference_timeout_seconds: float = 120.0
    inference_max_attempts: int = 3
    retry_inference_on_failure: bool = True
    log_inference_requests: bool = False
    record_max_tokens: int = 1024  # cap of a record call's max_tokens (a job may set its own)
    max_answer_bytes: int = 8 * 1024 * 1024  # a provider answer over this fails the call
    # worker
    job_poll_seconds: float = 5.0
    update_every_k: int = 5
    max_concurrent_jobs: int = 1
    max_in_flight_per_job: int = 16
    max_in_flight: int = 64
    progress_flush_seconds: float = 1.0
    peer_lease_seconds: float = 60.0
    index_reconcile_seconds: float = 3600.0
    # a peer that never wrote a heartbeat (the original app): silent this long, in every job
    original_peer_lease_seconds: float = 900.0
    command_poll_seconds: float = 0.5
    command_wait_seconds: float = 10.0
    shutdown_grace_seconds: float = 10.0
    # quality (issue 17): near-duplicates and their resampling
    near_duplicate_threshold: float = 0.8  # estimated Jaccard of two records' text shingles
    resample_max_records: int = 50  # records one "resample near-duplicates" may call again
    log_level: str = "INFO"

    @property
    def app_url(self) -> str:
        """Where users reach the app, for links in mails: ``DATAGEN_PUBLIC_URL``, else this
        replica's own address (loopback when it listens on every interface)."""
        if self.public_url:
            return self.public_url
        host = self.app_host
        if host in ("", "0.0.0.0", "::", "[::]"):
            host = "127.0.0.1"
        elif ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.app_port}"

    @property
    def uses_mock_inference(self) -> bool:
        return self.inference_base_url is None

    @property
    def attempts_per_record(self) -> int:
        """Attempts per record: ``RETRY_INFERENCE_ON_FAILURE=false`` means exactly one."""
        return self.inference_max_attempts if self.retry_inference_on_failure else 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        env = _Env(environ)
        data_dir = Path(env.str("DATAGEN_DATA_DIR", default=".datagems") or ".datagems")

        peers_found = env.raw("R1EN_CHAINSTORE_PEERS", "EE_CHAINSTORE_PEERS")
        host_addr = env.str("R1EN_HOST_ADDR", "EE_HOST_ADDR", default="local") or "local"
        if peers_found:
            peers = parse_peer_list(*peers_found)
            if host_addr not in peers:
                raise SettingsError(
                    f"R1EN_HOST_ADDR={host_addr} is not in {peers_found[0]} [{', '.join(peers)}]"
                )
        else:
            peers = [host_addr]

        force_embedded = env.bool("DATAGEN_MOCK_CSTORE", default=False)
        cstore_url = None
        r1fs_url = None
        if not force_embedded:
            cstore_url = host_port_url(
                env, ("EE_CHAINSTORE_API_HOST",), ("EE_CHAINSTORE_API_PORT",)
            ) or env.url("EE_CHAINSTORE_API_URL", "R1EN_CHAINSTORE_API_URL")
            r1fs_url = host_port_url(env, ("EE_R1FS_API_HOST",), ("EE_R1FS_API_PORT",)) or env.url(
                "EE_R1FS_API_URL", "R1EN_R1FS_API_URL"
            )

        host_ip = env.str("R1EN_HOST_IP")
        inference_url = None
        if not env.bool("DATAGEN_MOCK_INFERENCE_API", default=False):
            inference_host = env.str("DATAGEN_INFERENCE_HOST", default=host_ip)
            inference_port = env.int("DATAGEN_INFERENCE_PORT", "API_PORT", default=0, maximum=65535)
            if inference_host and inference_port:
                inference_url = check_url(
                    "DATAGEN_INFERENCE_HOST", f"http://{inference_host}:{inference_port}"
                )
            else:
                inference_url = env.url("DATAGEN_INFERENCE_BASE_URL")

        preset = None
        preset_found = env.raw("NEXT_PUBLIC_DATAGEN_UI_TEST_PRESET", "DATAGEN_UI_TEST_PRESET")
        if preset_found:
            try:
                preset = orjson.loads(preset_found[1])
            except orjson.JSONDecodeError:
                raise SettingsError(f"{preset_found[0]} is not valid JSON") from None
            if not isinstance(preset, dict):
                raise SettingsError(f"{preset_found[0]} must be a JSON object")

        level = (env.str("DATAGEN_LOG_LEVEL", default="INFO") or "INFO").upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise SettingsError(f"DATAGEN_LOG_LEVEL={level} is not DEBUG, INFO, WARNING or ERROR")

        max_in_flight_per_job = env.int(
            "DATAGEN_MAX_IN_FLIGHT_PER_JOB", default=16, minimum=1, maximum=1024
        )
        cache_dir = env.str("DATAGEN_LOCAL_CACHE_DIR")

        return cls(
            data_dir=data_dir,
            cstore_url=cstore_url,
            r1fs_url=r1fs_url,
            chainstore_peers=tuple(peers),
            host_addr=host_addr,
            local_cache_dir=Path(cache_dir) if cache_dir else data_dir / "cache",
            store_timeout_seconds=env.float(
                "DATAGEN_STORE_TIMEOUT_SECONDS", default=35.0, minimum=0.1
            ),
            export_stall_seconds=env.float(
                "DATAGEN_EXPORT_STALL_SECONDS", default=30.0, minimum=0.1
            ),
            r1fs_secret=env.secret("DATAGEN_R1FS_SECRET"),
            log_r1fs_calls=env.bool("DATAGEN_LOG_R1FS_CALLS", default=False),
            auth_hkey=env.str(
                "R1EN_CSTORE_AUTH_HKEY", "EE_CSTORE_AUTH_HKEY", default="datagen:auth"
            )
            or "datagen:auth",
            auth_secret=env.secret(
                "R1EN_CSTORE_AUTH_SECRET", "EE_CSTORE_AUTH_SECRET", minimum=MIN_PEPPER_CHARS
            ),
            bootstrap_admin_password=env.secret(
                "R1EN_CSTORE_AUTH_BOOTSTRAP_ADMIN_PWD",
                "EE_CSTORE_AUTH_BOOTSTRAP_ADMIN_PWD",
                minimum=MIN_ADMIN_PASSWORD_CHARS,
            ),
            session_secret=env.secret("DATAGEN_SESSION_SECRET", minimum=MIN_SESSION_SECRET_CHARS),
            cookie_secure=env.bool("DATAGEN_COOKIE_SECURE", default=False),
            app_host=env.str("DATAGEN_APP_HOST", default=host_ip or "127.0.0.1") or "127.0.0.1",
            app_port=env.int("DATAGEN_APP_PORT", default=3000, maximum=65535),
            public_url=env.url("DATAGEN_PUBLIC_URL"),
            max_records_per_job=env.int(
                "DATAGEN_MAX_RECORDS_PER_JOB", default=200, minimum=1, maximum=10_000_000
            ),
            max_external_api_configs=env.int(
                "DATAGEN_MAX_EXTERNAL_API_CONFIGS", default=10, minimum=0, maximum=1000
            ),
            active_poll_seconds=env.int("DATAGEN_ACTIVE_POLL_SECONDS", default=10, minimum=1),
            idle_poll_seconds=env.int("DATAGEN_IDLE_POLL_SECONDS", default=30, minimum=1),
            show_failures=env.bool("NEXT_PUBLIC_SHOW_FAILURES", default=True),
            ui_test_preset=preset,
            allow_private_urls=env.bool("DATAGEN_ALLOW_PRIVATE_URLS", default=False),
            max_body_bytes=env.int("DATAGEN_MAX_BODY_BYTES", default=1_048_576, minimum=1024),
            seed_max_bytes=env.int(
                "DATAGEN_SEED_MAX_BYTES", default=2_097_152, minimum=1024, maximum=256 * 2**20
            ),
            register_window_seconds=env.int(
                "DATAGEN_REGISTER_RATE_WINDOW_SECONDS", default=900, minimum=1
            ),
            register_max_per_ip=env.int("DATAGEN_REGISTER_MAX_PER_IP", default=10, minimum=1),
            register_max_per_email=env.int("DATAGEN_REGISTER_MAX_PER_EMAIL", default=3, minimum=1),
            resend_window_seconds=env.int(
                "DATAGEN_RESEND_RATE_WINDOW_SECONDS", default=900, minimum=1
            ),
            resend_max_per_ip=env.int("DATAGEN_RESEND_MAX_PER_IP", default=5, minimum=1),
            resend_max_per_email=env.int("DATAGEN_RESEND_MAX_PER_EMAIL", default=2, minimum=1),
            login_window_seconds=env.int(
                "DATAGEN_LOGIN_RATE_WINDOW_SECONDS", default=900, minimum=1
            ),
            login_max_failures_per_account=env.int(
                "DATAGEN_LOGIN_MAX_FAILURES_PER_ACCOUNT", default=10, minimum=1
            ),
            login_max_failures_per_address=env.int(
                "DATAGEN_LOGIN_MAX_FAILURES_PER_ADDRESS", default=100, minimum=1
            ),
            task_window_seconds=env.int(
                "DATAGEN_TASK_RATE_WINDOW_SECONDS", default=3600, minimum=1
            ),
            task_max_per_window=env.int("DATAGEN_TASK_MAX_PER_WINDOW", default=30, minimum=1),
            max_running_jobs_per_user=env.int(
                "DATAGEN_MAX_RUNNING_JOBS_PER_USER", default=3, minimum=1
            ),
            max_active_records_per_user=env.int(
                "DATAGEN_MAX_ACTIVE_RECORDS_PER_USER", default=10_000, minimum=1
            ),
            admin_limits_exempt=env.bool("DATAGEN_ADMIN_LIMITS_EXEMPT", default=True),
            smtp_host=env.str("DATAGEN_SMTP_HOST"),
            smtp_port=env.int("DATAGEN_SMTP_PORT", default=587, minimum=1, maximum=65535),
            smtp_user=env.str("DATAGEN_SMTP_USER"),
            smtp_password=env.secret("DATAGEN_SMTP_PASS"),
            smtp_from=env.str("DATAGEN_SMTP_FROM"),
            inference_base_url=inference_url,
            inference_token=env.secret("DATAGEN_INFERENCE_API_TOKEN"),
            inference_timeout_seconds=env.float(
                "DATAGEN_INFERENCE_TIMEOUT_SECONDS", default=120.0, minimum=0.1
            ),
            inference_max_attempts=env.int(
                "DATAGEN_INFERENCE_MAX_ATTEMPTS", default=3, minimum=1, maximum=20
            ),
            retry_inference_on_failure=env.bool("RETRY_INFERENCE_ON_FAILURE", default=True),
            log_inference_requests=env.bool("LOG_INFERENCE_REQUESTS", default=False),
            record_max_tokens=env.int(
                "DATAGEN_RECORD_MAX_TOKENS", default=1024, minimum=16, maximum=8192
            ),
            max_answer_bytes=env.int(
                "DATAGEN_MAX_ANSWER_BYTES",
                default=8 * 1024 * 1024,
                minimum=64 * 1024,
                maximum=256 * 1024 * 1024,
            ),
            job_poll_seconds=env.float("DATAGEN_JOB_POLL_SECONDS", default=5.0, minimum=0.05),
            update_every_k=env.int("DATAGEN_UPDATE_EVERY_K_REQUESTS", default=5, minimum=1),
            max_concurrent_jobs=env.int(
                "DATAGEN_MAX_CONCURRENT_JOBS_PER_INSTANCE", default=1, minimum=1, maximum=64
            ),
            max_in_flight_per_job=max_in_flight_per_job,
            max_in_flight=env.int(
                "DATAGEN_MAX_IN_FLIGHT",
                default=max(64, max_in_flight_per_job),
                minimum=1,
                maximum=4096,
            ),
            progress_flush_seconds=env.float(
                "DATAGEN_PROGRESS_FLUSH_SECONDS", default=1.0, minimum=0.05
            ),
            peer_lease_seconds=env.float("DATAGEN_PEER_LEASE_SECONDS", default=60.0, minimum=1.0),
            index_reconcile_seconds=env.float(
                "DATAGEN_INDEX_RECONCILE_SECONDS", default=3600.0, minimum=1.0
            ),
            original_peer_lease_seconds=env.float(
                "DATAGEN_ORIGINAL_PEER_LEASE_SECONDS", default=900.0, minimum=1.0
            ),
            command_poll_seconds=env.float(
                "DATAGEN_COMMAND_POLL_SECONDS", default=0.5, minimum=0.02
            ),
            command_wait_seconds=env.float(
                "DATAGEN_COMMAND_WAIT_SECONDS", default=10.0, minimum=0.5
            ),
            shutdown_grace_seconds=env.float(
                "DATAGEN_SHUTDOWN_GRACE_SECONDS", default=10.0, minimum=0.0
            ),
            near_duplicate_threshold=_threshold(env),
            resample_max_records=env.int(
                "DATAGEN_RESAMPLE_MAX_RECORDS", default=50, minimum=1, maximum=100_000
            ),
            log_level=level,
        )

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (tests and the CLI's flags)."""
        from dataclasses import replace

        return replace(self, **changes)
