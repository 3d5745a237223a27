"""Per-installation sandbox credentials: a real `relaydesk sandbox` process and the CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from relaydesk.channels.twilio.gateway import make_client
from relaydesk.core.config import Settings
from tests.conftest import wait_for
from tests.pgserver import free_port

RELAYDESK = [sys.executable, "-m", "relaydesk.cli"]
# The credentials every installation shared before they were generated per DATA_DIR.
OLD_SID = "AC" + "5a" * 16
OLD_TOKEN = "sandbox" + "0" * 25
CUSTOMER = "+48600100777"


def clean_env(data_dir: Path) -> dict[str, str]:
    """This environment without any relaydesk setting, on its own DATA_DIR."""
    names = {name.upper() for name in Settings.model_fields}
    names |= {f"{name}_FILE" for name in names}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env.update({"DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING"})
    return env


def shown_credentials(env: dict[str, str]) -> tuple[str, str]:
    """What `relaydesk sandbox-credentials` prints: (Account SID, auth token)."""
    result = subprocess.run(
        [*RELAYDESK, "sandbox-credentials"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    sid = re.search(r"^Account SID:\s+(AC[0-9a-f]{32})$", result.stdout, re.M)
    token = re.search(r"^Auth token:\s+(\S+)$", result.stdout, re.M)
    assert sid and token, result.stdout
    return sid.group(1), token.group(1)


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`relaydesk sandbox --port N` on a fresh DATA_DIR with no credentials configured."""
    env = clean_env(tmp_path / "data")
    port = free_port()
    proc = subprocess.Popen(
        [*RELAYDESK, "sandbox", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the sandbox exited: {proc.communicate()[0]}")
        try:
            return httpx.get(f"{base}/sandbox/config", timeout=1).status_code == 401
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, timeout=60, what="the standalone sandbox")
        yield base, env
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_old_constant_credentials_are_refused_everywhere(
    standalone: tuple[str, dict[str, str]],
) -> None:
    base, _ = standalone
    old = (OLD_SID, OLD_TOKEN)
    messages = f"{base}/2010-04-01/Accounts/{OLD_SID}/Messages.json"
    refused = [
        httpx.get(f"{base}/sandbox/phone/messages", auth=old),
        httpx.post(
            f"{base}/sandbox/phone/messages", auth=old, json={"from": CUSTOMER, "body": "x"}
        ),
        httpx.get(f"{base}/sandbox/config", auth=old),
        httpx.get(messages, auth=old),
        httpx.post(messages, auth=old, data={"To": CUSTOMER, "From": "+15005550006", "Body": "x"}),
        httpx.get(f"{base}/sandbox/twilio/2010-04-01/Accounts/{OLD_SID}.json", auth=old),
    ]
    assert [answer.status_code for answer in refused] == [401] * len(refused)
    assert refused[3].json()["code"] == 20003


def test_cli_shows_the_credentials_the_standalone_sandbox_accepts(
    standalone: tuple[str, dict[str, str]],
) -> None:
    base, env = standalone
    sid, token = shown_credentials(env)
    assert (sid, token) != (OLD_SID, OLD_TOKEN)

    phone = httpx.get(f"{base}/sandbox/phone/messages", auth=(sid, token))
    assert phone.status_code == 200, phone.text
    client = make_client(base, sid, token)
    sent = client.messages.create(to=CUSTOMER, from_="+15005550006", body="Dzień dobry")
    assert sent.account_sid == sid
    assert [m.sid for m in client.messages.list(to=CUSTOMER)] == [sent.sid]
    # Half of the right pair is not enough.
    assert httpx.get(f"{base}/sandbox/phone/messages", auth=(sid, OLD_TOKEN)).status_code == 401
    assert httpx.get(f"{base}/sandbox/phone/messages", auth=(OLD_SID, token)).status_code == 401


def test_cli_credentials_differ_between_data_dirs_and_say_where_they_live(
    tmp_path: Path,
) -> None:
    one, two = clean_env(tmp_path / "one"), clean_env(tmp_path / "two")
    first = shown_credentials(one)
    assert shown_credentials(one) == first
    assert shown_credentials(two)[0] != first[0]
    result = subprocess.run(
        [*RELAYDESK, "sandbox-credentials"], env=one, capture_output=True, text=True, timeout=60
    )
    assert str(tmp_path / "one" / ".sandbox_credentials") in result.stdout
    live = {**one, "TWILIO_MODE": "live", "TWILIO_ACCOUNT_SID": "AC" + "1" * 32}
    live |= {"TWILIO_AUTH_TOKEN": "l" * 32, "TWILIO_DEFAULT_FROM": "+48500100200"}
    refused = subprocess.run(
        [*RELAYDESK, "sandbox-credentials"], env=live, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "l" * 32 not in refused.stdout + refused.stderr
