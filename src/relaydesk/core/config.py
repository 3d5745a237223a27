"""Settings read from the environment and `.env`, validated once at start-up."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import phonenumbers
from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

log = logging.getLogger(__name__)

SANDBOX_DEFAULT_FROM = "+15005550006"  # Twilio's magic "valid sender" test number

PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "please-change", "xxx", "test"}
SECRET_FIELDS = (
    "secret_key",
    "twilio_auth_token",
    "openai_api_key",
    "elevenlabs_api_key",
    "metrics_token",
)


@dataclass(frozen=True)
class SandboxCredentials:
    """The built-in emulator's account: an Account SID and its auth token."""

    account_sid: str
    auth_token: str


SANDBOX_CREDENTIALS_FILE = ".sandbox_credentials"
_SANDBOX_SID = re.compile(r"^AC[0-9a-f]{32}$")
_SANDBOX_TOKEN = re.compile(r"^[0-9a-f]{32}$")


class ConfigError(Exception):
    """A configuration value is missing or invalid; the message says which and why."""


class Settings(BaseSettings):
    """Every knob relaydesk reads from its environment."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    data_dir: Path = Path("data")
    db_path: Path | None = None
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    public_base_url: str | None = None
    # The reverse proxies whose X-Forwarded-For/-Proto/-Host are believed, in uvicorn's
    # variable and syntax: IPs and CIDR networks separated by commas, "*" for any peer,
    # "" for none. Read by the app (relaydesk.core.proxies) and given to uvicorn alike.
    forwarded_allow_ips: str = "127.0.0.1,::1"
    secret_key: str | None = None
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    # One line per HTTP request (method, path, status, duration, client): off by default.
    access_log: bool = False
    # A bearer token that may read /metrics only (Prometheus' scrape config); API tokens
    # of any role may read it too. At least 16 characters.
    metrics_token: str | None = Field(None, min_length=16)
    # /ready fails when the data directory's disk has less free space than this.
    ready_min_free_mb: int = Field(200, ge=0, le=10_000_000)
    # Scheduled backups (relaydesk.backups): a daily archive into BACKUP_DIR at
    # BACKUP_HOUR (UTC), the newest BACKUP_KEEP kept. Unset BACKUP_DIR: no schedule.
    backup_dir: Path | None = None
    backup_keep: int = Field(7, ge=1, le=1000)
    backup_hour: int = Field(3, ge=0, le=23)

    twilio_mode: Literal["sandbox", "live"] | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_default_from: str | None = None
    twilio_whatsapp_from: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_validate_signature: bool = True
    twilio_api_base_url: str | None = None
    twilio_timeout_seconds: float = Field(15.0, gt=0, le=120)
    default_region: str = "PL"
    # The language of the texts customers get by default (HELP answer, the AI's prompt
    # and its fallback); unset: Polish for DEFAULT_REGION=PL, English elsewhere.
    default_language: Literal["en", "pl"] | None = None

    redis_url: str | None = None
    web_workers: int = Field(1, ge=1, le=64)
    worker_threads: int = Field(4, ge=1, le=64)  # the live queue: answers, sends, sweeps
    bulk_worker_threads: int = Field(3, ge=1, le=64)  # campaigns, builds, syncs, media
    # Twilio calls in flight at once per process, for automatic answers and again for
    # queued sends (scheduled, reminders, retries): Twilio takes a tenth of a second or
    # more to reply, so the calls go together instead of one after another.
    send_concurrency: int = Field(32, ge=1, le=256)
    max_send_attempts: int = Field(8, ge=1, le=50)
    send_claim_lease_seconds: float = Field(120.0, gt=0, le=3600)
    # When to ask Twilio for the status of a sent message that has not become final
    # (its callbacks may have come while the server was down): seconds after sending.
    # Written "600,3600,43200,86400"; the last step is the last question.
    status_check_after_seconds: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [600.0, 3600.0, 43200.0, 86400.0], max_length=20
    )
    # How often the sweeps run (the periodic jobs that pick up work a crash or a lost job
    # left behind, and work that became due): every minute; tests need not wait that long.
    sweep_seconds: int = Field(60, ge=1, le=60)

    # AI and automatic answers.
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    # The panel may point the AI at a server on this machine or the LAN (Ollama, vLLM).
    llm_allow_private_networks: bool = False
    llm_model_path: str | None = None  # local GGUF file; default: the SmolLM2 model
    llm_timeout_seconds: float = Field(60.0, gt=0, le=600)
    llm_retries: int = Field(2, ge=0, le=10)
    llm_retry_backoff_seconds: float = Field(1.0, ge=0, le=60)
    automation_lease_seconds: float = Field(180.0, gt=0, le=3600)
    # Automatic answers waiting for their model at once (each holds a thread, not a
    # database connection); more wait their turn. A local model answers one at a time.
    model_concurrency: int = Field(16, ge=1, le=256)

    # Knowledge indexes: which model turns text into vectors (None: the provider's default).
    embedding_provider: Literal["openai", "local"] = "local"
    embedding_model: str | None = None

    # News scraper. Sources on this machine or the LAN (an intranet) need the switch.
    scraper_allow_private_networks: bool = False
    # Outgoing webhooks: endpoints on this machine or the LAN (a CRM inside) need the switch.
    webhooks_allow_private_networks: bool = False
    # Assistants' tools: the business's own APIs on this machine or the LAN need the switch.
    tools_allow_private_networks: bool = False
    scraper_timeout_seconds: float = Field(20.0, gt=0, le=300)
    scraper_max_bytes: int = Field(5 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    scraper_concurrency: int = Field(4, ge=1, le=32)
    scraper_max_articles_per_source: int = Field(20, ge=1, le=500)
    scraper_keep_articles_per_category: int = Field(500, ge=1, le=100_000)
    # Daily news digests: longer answers are cut at a sentence to fit (cost per SMS).
    digest_max_segments: int = Field(3, ge=1, le=10)

    # Media: attachments, voice notes, images and voice replies.
    media_max_bytes: int = Field(16 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    media_link_ttl_minutes: int = Field(24 * 60, ge=1, le=30 * 24 * 60)
    media_download_timeout_seconds: float = Field(30.0, gt=0, le=600)
    # Outbound media at an address on this machine or the LAN (checked before sending).
    media_allow_private_networks: bool = False
    transcription_provider: Literal["openai", "local"] = "local"
    # openai: a model name (default whisper-1); local: a faster-whisper model directory
    # (default: the multilingual Whisper base model, installed as a package).
    transcription_model: str | None = None
    # What voice notes are spoken in, as an ISO 639-1 code ("pl"); None: the model detects
    # it per note (bench/polish_speech.py: Whisper base told "pl" does better on Polish).
    transcription_language: str | None = None
    vision_provider: Literal["openai", "none"] = "none"
    vision_model: str = "gpt-4o-mini"
    tts_provider: Literal["elevenlabs", "espeak"] = "espeak"
    tts_voice: str | None = None  # ElevenLabs voice id, or an espeak-ng voice (default en)
    tts_model: str = "eleven_multilingual_v2"
    elevenlabs_api_key: str | None = None
    elevenlabs_base_url: str | None = None  # default: https://api.elevenlabs.io

    # Campaigns (Multi-SMS).
    campaign_rate_mps: float = Field(1.0, gt=0, le=10_000)
    campaign_max_recipients: int = Field(250, ge=1, le=1_000_000)
    campaign_concurrency: int = Field(16, ge=1, le=256)
    campaign_pause_after_failures: int = Field(10, ge=1, le=10_000)
    campaign_lease_seconds: float = Field(30.0, gt=0, le=3600)

    # Emulator knobs (sandbox mode only).
    sandbox_status_delay_ms: int = Field(800, ge=0, le=60_000)
    sandbox_latency_ms: int = Field(0, ge=0, le=60_000)
    sandbox_sender_mps: float = Field(0.0, ge=0)
    sandbox_api_rps: float = Field(0.0, ge=0)
    # Status callbacks and media URLs given to the emulator may lead to this machine or
    # the LAN (a test receiver); relaydesk's own address is always allowed.
    sandbox_allow_private_networks: bool = False

    # Whether TWILIO_MODE itself was given (the validator fills in a default otherwise).
    _mode_given: bool = PrivateAttr(False)
    # The emulator's generated account, read from DATA_DIR on first use.
    _sandbox_credentials: SandboxCredentials | None = PrivateAttr(None)

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        value = value.strip().upper()
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"'{value}' is not a two-letter country code such as PL or GB")
        return value

    @field_validator("default_language", mode="before")
    @classmethod
    def _language(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower() or None
            if value not in (None, "en", "pl"):
                raise ValueError(f"'{value}' is not a language relaydesk speaks: en or pl")
        return value

    @field_validator("transcription_language", mode="before")
    @classmethod
    def _spoken(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower()
            if value in ("", "auto"):
                return None
            if re.fullmatch(r"[a-z]{2,3}", value) is None:
                raise ValueError(
                    f"'{value}' is not a language code such as pl or en (or auto to detect it)"
                )
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxies(cls, value: str) -> str:
        text = value.strip()
        if text in ("*", ""):
            return text
        items = [item.strip() for item in text.split(",")]
        for item in items:
            try:
                if "/" in item:
                    ipaddress.ip_network(item)
                else:
                    ipaddress.ip_address(item)
            except ValueError:
                raise ValueError(
                    f"'{item}' is not an IP address or a network such as 10.0.0.0/8; list "
                    "the proxies' addresses separated by commas, or give * to trust every peer"
                ) from None
        return ",".join(items)

    @field_validator(
        "public_base_url", "twilio_api_base_url", "openai_base_url", "elevenlabs_base_url"
    )
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"'{value}' must start with http:// or https://")
        return value

    @field_validator("backup_dir", mode="before")
    @classmethod
    def _optional_dir(cls, value: object) -> object:
        if isinstance(value, str) and value.strip() == "":
            return None  # BACKUP_DIR= (empty): no scheduled backups
        return value

    @field_validator("status_check_after_seconds", mode="before")
    @classmethod
    def _split_steps(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("status_check_after_seconds")
    @classmethod
    def _check_steps(cls, value: list[float]) -> list[float]:
        if any(step <= 0 or step > 7 * 86400 for step in value):
            raise ValueError("each step must be between 0 and 604800 seconds (7 days)")
        return sorted(value)

    @field_validator("twilio_account_sid")
    @classmethod
    def _account_sid(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        value = value.strip()
        if not (value.startswith("AC") and len(value) == 34):
            raise ValueError("must be an Account SID: 'AC' followed by 32 characters")
        return value

    @field_validator("twilio_messaging_service_sid")
    @classmethod
    def _service_sid(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        value = value.strip()
        if not (value.startswith("MG") and len(value) == 34):
            raise ValueError("must be a Messaging Service SID: 'MG' followed by 32 characters")
        return value

    @model_validator(mode="after")
    def _mode(self) -> Settings:
        self._mode_given = self.twilio_mode is not None
        if self.twilio_mode is None:
            self.twilio_mode = "live" if self.twilio_account_sid else "sandbox"
        if self.twilio_mode == "live":
            missing = [
                name
                for name, value in (
                    ("TWILIO_ACCOUNT_SID", self.twilio_account_sid),
                    ("TWILIO_AUTH_TOKEN", self.twilio_auth_token),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"TWILIO_MODE=live needs {' and '.join(missing)}")
            if not (self.twilio_default_from or self.twilio_messaging_service_sid):
                raise ValueError(
                    "TWILIO_MODE=live needs TWILIO_DEFAULT_FROM or TWILIO_MESSAGING_SERVICE_SID"
                )
            if self.secret_key and self.secret_key.lower() in PLACEHOLDER_SECRETS:
                raise ValueError("SECRET_KEY is a placeholder; set a long random value")
        return self

    # Derived values -------------------------------------------------------------------

    @property
    def language(self) -> Literal["en", "pl"]:
        """The installation's language: DEFAULT_LANGUAGE, else from DEFAULT_REGION."""
        if self.default_language is not None:
            return self.default_language
        return "pl" if self.default_region == "PL" else "en"

    @property
    def sandbox(self) -> bool:
        """True when the built-in emulator stands in for Twilio."""
        return self.twilio_mode == "sandbox"

    @property
    def mode_env_var(self) -> str | None:
        """The variable that fixed the Twilio mode (the panel cannot change it), if any."""
        if self._mode_given:
            return "TWILIO_MODE"
        return "TWILIO_ACCOUNT_SID" if self.twilio_account_sid else None

    @property
    def sandbox_credentials(self) -> SandboxCredentials:
        """This installation's emulator account (generated once in DATA_DIR)."""
        if self._sandbox_credentials is None:
            self._sandbox_credentials = sandbox_credentials(self.data_dir)
        return self._sandbox_credentials

    @property
    def account_sid(self) -> str:
        """The Account SID the app and the emulator use."""
        return self.twilio_account_sid or self.sandbox_credentials.account_sid

    @property
    def auth_token(self) -> str:
        """The auth token that signs webhooks and authenticates API calls."""
        return self.twilio_auth_token or self.sandbox_credentials.auth_token

    @property
    def default_from(self) -> str | None:
        """The sender used when no Messaging Service is configured."""
        if self.twilio_default_from:
            return self.twilio_default_from
        return SANDBOX_DEFAULT_FROM if self.sandbox else None

    @property
    def base_url(self) -> str:
        """Where Twilio (or the emulator) reaches this server."""
        return self.public_base_url or f"http://127.0.0.1:{self.port}"

    @property
    def twilio_api_base(self) -> str:
        """Base URL of the Twilio REST API the gateway talks to."""
        if self.twilio_api_base_url:
            return self.twilio_api_base_url
        if self.sandbox:
            return f"{self.base_url}/sandbox/twilio"
        return "https://api.twilio.com"

    @property
    def embedded_sandbox(self) -> bool:
        """True when this server itself serves the emulator's routes."""
        return self.sandbox and not self.twilio_api_base_url

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL, PostgreSQL URLs forced onto the psycopg 3 driver."""
        if self.database_url:
            url = self.database_url
            for prefix in ("postgres://", "postgresql://"):
                if url.startswith(prefix):
                    return "postgresql+psycopg://" + url[len(prefix) :]
            return url
        return f"sqlite:///{self.sqlite_path}"

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file used when DATABASE_URL is not set."""
        return self.db_path or (self.data_dir / "app.db")

    @property
    def is_sqlite(self) -> bool:
        """True when the database is SQLite."""
        return self.sqlalchemy_url.startswith("sqlite")

    def warnings(self) -> list[str]:
        """Half-configured or unsafe settings worth a loud line at start-up and in /health."""
        out = []
        if not self.twilio_validate_signature:
            out.append(
                "TWILIO_VALIDATE_SIGNATURE=false: webhook signatures are NOT checked; "
                "anyone can inject messages"
            )
        if self.twilio_mode == "live" and not self.public_base_url:
            out.append(
                "PUBLIC_BASE_URL is not set: Twilio cannot reach the status callback, "
                "delivery statuses will not be recorded"
            )
        return out


def _read_file_secrets() -> dict[str, str]:
    """Support NAME_FILE variables (Docker/systemd secrets) for every secret setting."""
    found = {}
    for field in SECRET_FIELDS:
        path = os.environ.get(f"{field.upper()}_FILE")
        if path:
            try:
                found[field] = Path(path).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"{field.upper()}_FILE: cannot read {path}: {exc}") from exc
    return found


def load_settings(*, create_files: bool = True) -> Settings:
    """Build settings or raise ConfigError with one readable line per problem.

    Without `create_files` nothing is written to DATA_DIR: SECRET_KEY stays unset unless
    the environment gives it, and the sandbox credentials are not generated (`relaydesk
    restore` reads the configuration of a data directory that must stay empty).
    """
    try:
        settings = Settings(**_read_file_secrets())  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = "_".join(str(p) for p in err["loc"]).upper() or "configuration"
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{name}: {message}" if err["loc"] else message)
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
    if not create_files:
        return settings
    if not settings.secret_key:
        settings.secret_key = _persistent_secret(settings.data_dir)
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        # Read (or made) now, so a damaged file stops the start with a clear line.
        _ = settings.sandbox_credentials
    return settings


def sandbox_credentials(data_dir: Path) -> SandboxCredentials:
    """The emulator's account of this DATA_DIR, generated on first use (mode 0600)."""
    path = data_dir / SANDBOX_CREDENTIALS_FILE
    text = _create_once(path, _new_sandbox_credentials, "sandbox credentials")
    try:
        data = json.loads(text)
        credentials = SandboxCredentials(str(data["account_sid"]), str(data["auth_token"]))
    except (ValueError, TypeError, KeyError):
        credentials = None
    if credentials is None or not (
        _SANDBOX_SID.match(credentials.account_sid) and _SANDBOX_TOKEN.match(credentials.auth_token)
    ):
        raise ConfigError(
            f"{path} is damaged; delete it to generate new sandbox credentials "
            "(clients using the old ones must then be given the new ones)"
        )
    return credentials


def _new_sandbox_credentials() -> str:
    # Shaped like Twilio's: "AC" and 32 hex digits, and a 32-hex-digit token.
    account = {"account_sid": "AC" + secrets.token_hex(16), "auth_token": secrets.token_hex(16)}
    return json.dumps(account) + "\n"


def _persistent_secret(data_dir: Path) -> str:
    """Generate SECRET_KEY once and keep it in the data directory (mode 0600)."""
    return _create_once(data_dir / ".secret_key", lambda: secrets.token_urlsafe(48), "SECRET_KEY")


def _create_once(path: Path, make: Callable[[], str], what: str) -> str:
    """The stripped content of `path`, written by `make()` (mode 0600) if it does not exist."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    # Written under a temporary name and linked into place: a process starting at the
    # same moment either wins the link or reads the complete value of the one that did.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        return path.read_text().strip()
    finally:
        tmp.unlink()
    log.info("generated new %s in %s", what, path)
    return value.strip()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return load_settings()
