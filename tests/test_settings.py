"""Settings: parsed once from the environment; a bad value stops the process in one line."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from datagems.bench.procs import clean_env, datagems_command
from datagems.errors import SettingsError
from datagems.settings import Settings, parse_peer_list
from tests.servers import ROOT

LONG_SECRET = "Gq7-uR2pZ0vX8kLm4tYw9sB1nC6dE3fH5jA"


def run_replica(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        datagems_command("replica"),
        env=clean_env(DATAGEN_DATA_DIR=str(tmp_path / "data"), **env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


BAD_VALUES = {
    "unknown peer": (
        {"R1EN_CHAINSTORE_PEERS": '["a","b"]', "R1EN_HOST_ADDR": "c"},
        "R1EN_HOST_ADDR=c is not in R1EN_CHAINSTORE_PEERS",
    ),
    "malformed peer list JSON": (
        {"R1EN_CHAINSTORE_PEERS": '["a", "b"', "R1EN_HOST_ADDR": "a"},
        "R1EN_CHAINSTORE_PEERS=",
    ),
    "non-numeric number": (
        {"DATAGEN_JOB_POLL_SECONDS": "fast"},
        "DATAGEN_JOB_POLL_SECONDS=fast is not a number",
    ),
    "bad URL": (
        {"EE_CHAINSTORE_API_URL": "ftp://node:31234"},
        "EE_CHAINSTORE_API_URL=ftp://node:31234 is not an http(s) URL",
    ),
    "out of range": (
        {"DATAGEN_APP_PORT": "70000"},
        "DATAGEN_APP_PORT=70000 must be between 0 and 65535",
    ),
    # the secrets of the README's old fleet example: a token forged with them was admin
    "placeholder session secret": (
        {"DATAGEN_SESSION_SECRET": "change-me"},
        "DATAGEN_SESSION_SECRET is a placeholder value, not a secret; generate one with",
    ),
    "placeholder pepper": (
        {"R1EN_CSTORE_AUTH_SECRET": "change-me-too"},
        "R1EN_CSTORE_AUTH_SECRET is a placeholder value",
    ),
    "short session secret": (
        {"DATAGEN_SESSION_SECRET": "Xk3-9fQz-2Lp"},
        "DATAGEN_SESSION_SECRET is 12 characters; at least 32 are needed",
    ),
    "short admin password": (
        {"R1EN_CSTORE_AUTH_BOOTSTRAP_ADMIN_PWD": "admin123"},
        "R1EN_CSTORE_AUTH_BOOTSTRAP_ADMIN_PWD is 8 characters; at least 12",
    ),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_a_bad_value_stops_the_replica_with_exit_2_and_one_stderr_line(
    tmp_path: Path, case: str
) -> None:
    env, expected = BAD_VALUES[case]
    done = run_replica(tmp_path, **env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("datagems replica: ")
    assert expected in lines[0]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()  # it stopped before touching anything


def test_the_error_line_never_shows_a_secret_value(tmp_path: Path) -> None:
    for secret in ("session-secret-xyz", "change-me-please-0123456789-abcdef", LONG_SECRET):
        done = run_replica(tmp_path, DATAGEN_SESSION_SECRET=secret, DATAGEN_APP_PORT="-1")
        assert done.returncode == 2
        assert secret not in done.stderr + done.stdout


# -- parsing -----------------------------------------------------------------------------
def test_no_variables_give_the_embedded_default() -> None:
    settings = Settings.from_env({})
    assert settings.cstore_url is None and settings.r1fs_url is None
    assert settings.chainstore_peers == ("local",)
    assert settings.host_addr == "local"
    assert settings.data_dir == Path(".datagems")
    assert settings.local_cache_dir == Path(".datagems/cache")
    assert settings.uses_mock_inference
    assert (settings.job_poll_seconds, settings.update_every_k, settings.max_concurrent_jobs) == (
        5.0,
        5,
        1,
    )
    assert settings.max_records_per_job == 200
    assert (settings.app_host, settings.app_port) == ("127.0.0.1", 3000)
    assert settings.auth_hkey == "datagen:auth"
    assert settings.session_secret is None
    assert settings.attempts_per_record == 3


def test_blank_values_count_as_unset() -> None:
    settings = Settings.from_env({"DATAGEN_APP_PORT": "  ", "EE_CHAINSTORE_API_URL": ""})
    assert settings.app_port == 3000
    assert settings.cstore_url is None


def test_r1en_variables_win_over_their_ee_fallbacks() -> None:
    env = {
        "R1EN_CHAINSTORE_PEERS": '["r1", "r2"]',
        "EE_CHAINSTORE_PEERS": '["e1"]',
        "R1EN_HOST_ADDR": "r2",
        "EE_HOST_ADDR": "e1",
        "R1EN_CSTORE_AUTH_HKEY": "r1en:auth",
        "EE_CSTORE_AUTH_HKEY": "ee:auth",
    }
    settings = Settings.from_env(env)
    assert settings.chainstore_peers == ("r1", "r2")
    assert settings.host_addr == "r2"
    assert settings.auth_hkey == "r1en:auth"


def test_ee_variables_are_used_when_the_r1en_ones_are_absent() -> None:
    settings = Settings.from_env(
        {
            "EE_CHAINSTORE_PEERS": "e1,e2",
            "EE_HOST_ADDR": "e2",
            "EE_CSTORE_AUTH_HKEY": "ee:auth",
            "EE_CSTORE_AUTH_SECRET": "pepper-0123456789ab",
            "R1EN_CHAINSTORE_API_URL": "http://10.0.0.5:31234/",
            "R1EN_R1FS_API_URL": "http://10.0.0.5:31235",
        }
    )
    assert settings.chainstore_peers == ("e1", "e2")
    assert settings.host_addr == "e2"
    assert settings.auth_hkey == "ee:auth"
    assert settings.auth_secret is not None
    assert settings.auth_secret.get_secret_value() == "pepper-0123456789ab"
    assert settings.cstore_url == "http://10.0.0.5:31234"
    assert settings.r1fs_url == "http://10.0.0.5:31235"


def test_host_and_port_win_over_the_url() -> None:
    settings = Settings.from_env(
        {
            "EE_CHAINSTORE_API_HOST": "10.1.1.1",
            "EE_CHAINSTORE_API_PORT": "4000",
            "EE_CHAINSTORE_API_URL": "http://ignored:31234",
            "EE_R1FS_API_HOST": "::1",
            "EE_R1FS_API_PORT": "4001",
        }
    )
    assert settings.cstore_url == "http://10.1.1.1:4000"
    assert settings.r1fs_url == "http://[::1]:4001"


def test_a_host_without_a_port_falls_back_to_the_url() -> None:
    settings = Settings.from_env(
        {"EE_CHAINSTORE_API_HOST": "10.1.1.1", "EE_CHAINSTORE_API_URL": "http://node:31234"}
    )
    assert settings.cstore_url == "http://node:31234"


def test_the_mock_cstore_flag_keeps_the_embedded_store_despite_urls() -> None:
    settings = Settings.from_env(
        {"DATAGEN_MOCK_CSTORE": "true", "EE_CHAINSTORE_API_URL": "http://node:31234"}
    )
    assert settings.cstore_url is None


def test_inference_host_and_port_default_to_the_node_ip_and_api_port() -> None:
    settings = Settings.from_env({"R1EN_HOST_IP": "10.2.2.2", "API_PORT": "5002"})
    assert settings.inference_base_url == "http://10.2.2.2:5002"
    assert settings.app_host == "10.2.2.2"
    fallback = Settings.from_env({"DATAGEN_INFERENCE_BASE_URL": "https://llm.example/v1/"})
    assert fallback.inference_base_url == "https://llm.example/v1"
    mocked = Settings.from_env(
        {"DATAGEN_MOCK_INFERENCE_API": "yes", "DATAGEN_INFERENCE_BASE_URL": "https://llm.example"}
    )
    assert mocked.uses_mock_inference


@pytest.mark.parametrize(
    ("value", "peers"),
    [
        ("a,b,c", ["a", "b", "c"]),
        (" \"a\" , 'b' ,, c ,", ["a", "b", "c"]),
        ('"0xai_A","0xai_B"', ["0xai_A", "0xai_B"]),
        ('["a", "b", "a", " "]', ["a", "b"]),
        ("single", ["single"]),
    ],
)
def test_a_peer_list_is_a_json_array_or_a_comma_list_with_quotes_stripped(
    value: str, peers: list[str]
) -> None:
    assert parse_peer_list("R1EN_CHAINSTORE_PEERS", value) == peers


@pytest.mark.parametrize("value", ['["a", 1]', ", ,", '[""]', '["a", "b"'])
def test_a_peer_list_with_no_usable_peer_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="R1EN_CHAINSTORE_PEERS"):
        parse_peer_list("R1EN_CHAINSTORE_PEERS", value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATAGEN_COOKIE_SECURE": "maybe"}, "is not a boolean"),
        ({"DATAGEN_UPDATE_EVERY_K_REQUESTS": "0"}, "must be >= 1"),
        ({"DATAGEN_UPDATE_EVERY_K_REQUESTS": "2.5"}, "is not a whole number"),
        ({"DATAGEN_JOB_POLL_SECONDS": "nan"}, "must be a finite number"),
        ({"DATAGEN_INFERENCE_BASE_URL": "localhost:8000"}, r"is not an http\(s\) URL"),
        ({"EE_R1FS_API_URL": "http://node:notaport"}, "has a bad port"),
        ({"DATAGEN_LOG_LEVEL": "loud"}, "DATAGEN_LOG_LEVEL=LOUD"),
        ({"NEXT_PUBLIC_DATAGEN_UI_TEST_PRESET": "[1]"}, "must be a JSON object"),
    ],
)
def test_each_bad_value_names_its_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message) as error:
        Settings.from_env(env)
    assert next(iter(env)) in str(error.value)
    assert "\n" not in str(error.value)


def test_secrets_are_hidden_in_the_settings_repr() -> None:
    settings = Settings.from_env(
        {"DATAGEN_SESSION_SECRET": LONG_SECRET, "DATAGEN_SMTP_PASS": "smtp-xyz"}
    )
    assert LONG_SECRET not in repr(settings)
    assert "smtp-xyz" not in repr(settings)
    assert settings.session_secret is not None
    assert settings.session_secret.get_secret_value() == LONG_SECRET


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATAGEN_SESSION_SECRET", "CHANGE-ME"),
        ("DATAGEN_SESSION_SECRET", "please-changeme-to-something-long-enough"),
        ("DATAGEN_SESSION_SECRET", "x" * 64),
        ("DATAGEN_SESSION_SECRET", "a" * 31 + "b"),
        ("R1EN_CSTORE_AUTH_SECRET", "short-pepper"),
        ("EE_CSTORE_AUTH_SECRET", "your-secret-here"),
        ("R1EN_CSTORE_AUTH_BOOTSTRAP_ADMIN_PWD", "password"),
    ],
)
def test_short_or_placeholder_secrets_are_refused_naming_the_variable_not_the_value(
    name: str, value: str
) -> None:
    with pytest.raises(SettingsError) as error:
        Settings.from_env({name: value})
    assert str(error.value).startswith(name)
    assert value not in str(error.value)
    assert "secrets.token_urlsafe" in str(error.value)


def test_a_generated_secret_is_accepted() -> None:
    import secrets

    settings = Settings.from_env(
        {
            "DATAGEN_SESSION_SECRET": secrets.token_urlsafe(48),
            "R1EN_CSTORE_AUTH_SECRET": secrets.token_urlsafe(32),
        }
    )
    assert settings.session_secret is not None and settings.auth_secret is not None


def test_the_public_url_for_mails_comes_from_the_settings_only() -> None:
    assert Settings.from_env({}).app_url == "http://127.0.0.1:3000"
    assert Settings.from_env({"DATAGEN_APP_HOST": "0.0.0.0"}).app_url == "http://127.0.0.1:3000"
    public = Settings.from_env({"DATAGEN_PUBLIC_URL": "https://gems.example.org/"})
    assert public.app_url == "https://gems.example.org"
    with pytest.raises(SettingsError):
        Settings.from_env({"DATAGEN_PUBLIC_URL": "javascript:alert(1)"})


def test_retry_off_means_exactly_one_attempt_per_record() -> None:
    assert Settings.from_env({"RETRY_INFERENCE_ON_FAILURE": "false"}).attempts_per_record == 1


def test_the_cache_folder_follows_the_data_folder_unless_set() -> None:
    assert Settings.from_env({"DATAGEN_DATA_DIR": "/d"}).local_cache_dir == Path("/d/cache")
    explicit = Settings.from_env({"DATAGEN_DATA_DIR": "/d", "DATAGEN_LOCAL_CACHE_DIR": "/c"})
    assert explicit.local_cache_dir == Path("/c")
