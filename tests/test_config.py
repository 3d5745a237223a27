"""Settings: defaults, derived values and readable errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from relaydesk.core.config import ConfigError, Settings, load_settings


def make(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> Settings:
    for key in list(__import__("os").environ):
        if key.startswith(("TWILIO_", "PUBLIC_BASE", "SECRET_KEY", "DATABASE_URL")):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)  # no stray .env
    return load_settings()


def test_defaults_are_sandbox_on_sqlite(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = make(monkeypatch, tmp_path)
    assert settings.sandbox
    assert settings.is_sqlite
    assert settings.sqlalchemy_url == f"sqlite:///{tmp_path}/app.db"
    assert settings.twilio_api_base == f"http://127.0.0.1:{settings.port}/sandbox/twilio"
    assert settings.default_region == "PL"
    # A secret key is generated once and kept private.
    key_file = tmp_path / ".secret_key"
    assert key_file.read_text() == settings.secret_key
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert make(monkeypatch, tmp_path).secret_key == settings.secret_key


def test_account_sid_switches_to_live(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = make(
        monkeypatch,
        tmp_path,
        TWILIO_ACCOUNT_SID="AC" + "1" * 32,
        TWILIO_AUTH_TOKEN="t" * 32,
        TWILIO_DEFAULT_FROM="+48500100200",
        DATABASE_URL="postgres://u:p@db/relay",
    )
    assert settings.twilio_mode == "live"
    assert settings.twilio_api_base == "https://api.twilio.com"
    assert settings.sqlalchemy_url == "postgresql+psycopg://u:p@db/relay"
    assert any("PUBLIC_BASE_URL" in w for w in settings.warnings())


def test_sweeps_run_every_minute_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert make(monkeypatch, tmp_path).sweep_seconds == 60
    assert make(monkeypatch, tmp_path, SWEEP_SECONDS="2").sweep_seconds == 2


def test_the_installation_speaks_the_language_of_its_region_unless_told(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert make(monkeypatch, tmp_path).language == "pl"  # DEFAULT_REGION=PL by default
    assert make(monkeypatch, tmp_path, DEFAULT_REGION="GB").language == "en"
    assert make(monkeypatch, tmp_path, DEFAULT_LANGUAGE=" EN ").language == "en"
    assert make(monkeypatch, tmp_path, DEFAULT_REGION="DE", DEFAULT_LANGUAGE="pl").language == "pl"


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"PORT": "0"}, "PORT"),
        ({"SWEEP_SECONDS": "0"}, "SWEEP_SECONDS"),
        ({"SWEEP_SECONDS": "61"}, "SWEEP_SECONDS"),
        ({"DEFAULT_REGION": "Polska"}, "two-letter country code"),
        ({"DEFAULT_LANGUAGE": "de"}, "en or pl"),
        ({"TWILIO_MODE": "production"}, "TWILIO_MODE"),
        ({"TWILIO_MESSAGING_SERVICE_SID": "SM123"}, "Messaging Service SID"),
        ({"TWILIO_MODE": "live", "TWILIO_ACCOUNT_SID": "AC" + "1" * 32}, "TWILIO_AUTH_TOKEN"),
        (
            {
                "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
                "TWILIO_AUTH_TOKEN": "x",
                "TWILIO_DEFAULT_FROM": "+48500100200",
                "SECRET_KEY": "changeme",
            },
            "placeholder",
        ),
    ],
)
def test_invalid_values_fail_fast_with_a_readable_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], words: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make(monkeypatch, tmp_path, **env)
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)


def test_secret_file_variants(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("from-a-file\n")
    settings = make(monkeypatch, tmp_path, TWILIO_AUTH_TOKEN_FILE=str(secret))
    assert settings.auth_token == "from-a-file"
    with pytest.raises(ConfigError, match="cannot read"):
        make(monkeypatch, tmp_path, TWILIO_AUTH_TOKEN_FILE=str(tmp_path / "missing"))


def test_disabled_signature_check_is_warned(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = make(monkeypatch, tmp_path, TWILIO_VALIDATE_SIGNATURE="false")
    assert any("NOT checked" in w for w in settings.warnings())


def test_processes_starting_together_agree_on_one_generated_secret_key(tmp_path: Path) -> None:
    import threading

    from relaydesk.core.config import _persistent_secret

    keys: list[str] = []
    starters = [
        threading.Thread(target=lambda: keys.append(_persistent_secret(tmp_path))) for _ in range(8)
    ]
    for starter in starters:
        starter.start()
    for starter in starters:
        starter.join()
    assert len(keys) == 8 and len(set(keys)) == 1
    assert [p.name for p in tmp_path.iterdir()] == [".secret_key"]
    assert (tmp_path / ".secret_key").stat().st_mode & 0o777 == 0o600


# The credentials every installation shared before they were generated per DATA_DIR.
OLD_SANDBOX_SID = "AC" + "5a" * 16
OLD_SANDBOX_TOKEN = "sandbox" + "0" * 25


def test_sandbox_credentials_are_generated_per_data_dir_and_kept_across_restarts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    first = make(monkeypatch, one)
    assert re.fullmatch(r"AC[0-9a-f]{32}", first.account_sid)
    assert re.fullmatch(r"[0-9a-f]{32}", first.auth_token)
    assert first.account_sid != OLD_SANDBOX_SID and first.auth_token != OLD_SANDBOX_TOKEN
    stored = one / ".sandbox_credentials"
    assert stored.stat().st_mode & 0o777 == 0o600
    assert first.auth_token in stored.read_text()

    again = make(monkeypatch, one)  # a restart on the same DATA_DIR
    assert (again.account_sid, again.auth_token) == (first.account_sid, first.auth_token)
    other = make(monkeypatch, two)
    assert other.account_sid != first.account_sid and other.auth_token != first.auth_token


def test_twilio_credentials_from_the_environment_win_over_the_generated_ones(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    generated = make(monkeypatch, tmp_path)
    token_only = make(monkeypatch, tmp_path, TWILIO_AUTH_TOKEN="t" * 32)
    assert (token_only.account_sid, token_only.auth_token) == (generated.account_sid, "t" * 32)
    both = make(
        monkeypatch,
        tmp_path,
        TWILIO_MODE="sandbox",
        TWILIO_ACCOUNT_SID="AC" + "2" * 32,
        TWILIO_AUTH_TOKEN="u" * 32,
    )
    assert (both.account_sid, both.auth_token) == ("AC" + "2" * 32, "u" * 32)


def test_damaged_sandbox_credentials_file_is_one_readable_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".sandbox_credentials").write_text("{not json")
    with pytest.raises(ConfigError) as caught:
        make(monkeypatch, tmp_path)
    assert ".sandbox_credentials" in str(caught.value) and "\n" not in str(caught.value)


def test_processes_starting_together_agree_on_one_set_of_sandbox_credentials(
    tmp_path: Path,
) -> None:
    import threading

    from relaydesk.core.config import sandbox_credentials

    found: list[tuple[str, str]] = []

    def start() -> None:
        credentials = sandbox_credentials(tmp_path)
        found.append((credentials.account_sid, credentials.auth_token))

    starters = [threading.Thread(target=start) for _ in range(8)]
    for starter in starters:
        starter.start()
    for starter in starters:
        starter.join()
    assert len(found) == 8 and len(set(found)) == 1
    assert [p.name for p in tmp_path.iterdir()] == [".sandbox_credentials"]
