"""Settings: defaults, derived values and readable errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from relaydesk.config import ConfigError, Settings, load_settings


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


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"PORT": "0"}, "PORT"),
        ({"DEFAULT_REGION": "Polska"}, "two-letter country code"),
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

    from relaydesk.config import _persistent_secret

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
