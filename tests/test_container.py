"""The container image and docker-compose.yml, as a user runs them.

The image is built from the repository's Dockerfile on a Debian bookworm base made
locally (debootstrap | docker import: no registry is needed), the small profile is
started with docker-compose, and from the outside: the container answers /ready and
turns healthy, stores a signed webhook, runs as its own unprivileged user, and still has
the message after a restart. Both profiles must pass `docker-compose config`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import missing, wait_for
from tests.pgserver import free_port

ROOT = Path(__file__).resolve().parents[1]
BASE_IMAGE = "relaydesk-base:bookworm"
IMAGE_TAG = "citest"
ACCOUNT_SID = "AC" + "c0" * 16
AUTH_TOKEN = "container-test-auth-token"

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def run(*args: str, cwd: Path | None = None, timeout: float = 900, **env: str) -> str:
    done = subprocess.run(
        args,
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done.stdout


def _docker_ready() -> bool:
    if shutil.which("docker") is None or shutil.which("docker-compose") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0


def _ensure_base() -> None:
    """A Debian bookworm base image, made here when missing (about a minute)."""
    if (
        subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True).returncode
        == 0
    ):
        return
    if shutil.which("debootstrap") is None:
        missing("debootstrap is not installed (apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(prefix="relaydesk-rootfs-") as rootfs:
        run("debootstrap", "--variant=minbase", "bookworm", rootfs, "http://deb.debian.org/debian")
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["docker", "import", "-", BASE_IMAGE],
            stdin=tar.stdout,
            capture_output=True,
            timeout=600,
        )
        tar.wait(timeout=600)
        assert imported.returncode == 0, imported.stderr


def _build_context(into: Path) -> None:
    """What .dockerignore lets through, plus this machine's CA bundle (a TLS proxy's CA)."""
    for name in (
        "Dockerfile",
        ".dockerignore",
        "package.json",
        "package-lock.json",
        "pyproject.toml",
        "README.md",
    ):
        shutil.copy2(ROOT / name, into / name)
    (into / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "vendor.sh", into / "scripts" / "vendor.sh")
    shutil.copytree(
        ROOT / "src",
        into / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "vendor", "*.egg-info"),
    )
    shutil.copytree(ROOT / "deploy" / "docker", into / "deploy" / "docker")
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if bundle.is_file():
        shutil.copy2(bundle, into / "deploy" / "docker" / "ca-certificates" / "host.crt")


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    if not _docker_ready():
        missing("Docker (dockerd running, docker-compose) is not available")
    _ensure_base()
    with tempfile.TemporaryDirectory(prefix="relaydesk-image-") as context:
        _build_context(Path(context))
        run(
            "docker",
            "build",
            "--build-arg",
            f"BASE={BASE_IMAGE}",
            "-t",
            f"relaydesk:{IMAGE_TAG}",
            context,
            timeout=1800,
        )
    yield f"relaydesk:{IMAGE_TAG}"


def compose_project(folder: Path, env: dict[str, str]) -> None:
    shutil.copy2(ROOT / "docker-compose.yml", folder / "docker-compose.yml")
    (folder / "deploy").mkdir(exist_ok=True)
    shutil.copy2(ROOT / "deploy" / "Caddyfile", folder / "deploy" / "Caddyfile")
    (folder / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))


def compose(folder: Path, *args: str, timeout: float = 600) -> str:
    return run("docker-compose", "--project-name", folder.name, *args, cwd=folder, timeout=timeout)


def test_both_compose_profiles_are_valid(tmp_path: Path) -> None:
    if shutil.which("docker-compose") is None:
        missing("docker-compose is not installed")
    compose_project(
        tmp_path,
        {
            "SECRET_KEY": "k" * 48,
            "POSTGRES_PASSWORD": "pw-for-the-test",
            "RELAYDESK_DOMAIN": "relay.example",
        },
    )
    small = compose(tmp_path, "--profile", "small", "config")
    assert "relaydesk" in small and "8000" in small
    scaled = compose(tmp_path, "--profile", "scale", "config")
    for service in ("web:", "worker:", "postgres:", "redis:", "caddy:"):
        assert service in scaled
    assert "postgresql://relaydesk:pw-for-the-test@postgres:5432/relaydesk" in scaled
    assert "https://relay.example" in scaled
    # Only Caddy's forwarded headers are believed, at its fixed address in the network.
    assert "FORWARDED_ALLOW_IPS: 172.30.80.10" in scaled
    assert "ipv4_address: 172.30.80.10" in scaled and "subnet: 172.30.80.0/24" in scaled
    # Every relaydesk container shares one volume (media, indexes, the secret key).
    assert scaled.count("relaydesk-data:/data") >= 2 or scaled.count("target: /data") >= 2


def test_the_small_profile_serves_stores_a_signed_webhook_and_keeps_it_across_a_restart(
    image: str, tmp_path: Path
) -> None:
    from relaydesk.channels.twilio.signature import sign

    port = free_port()
    project = tmp_path / f"rdtest{port}"
    project.mkdir()
    compose_project(
        project,
        {
            "RELAYDESK_VERSION": IMAGE_TAG,
            "RELAYDESK_BIND": "127.0.0.1",
            "RELAYDESK_PORT": str(port),
            # docker-compose creates every network, the scale profile's too: a run of
            # the suite beside this one (another project) must not ask for the same.
            "RELAYDESK_SUBNET": f"172.30.{100 + port % 150}.0/24",
            "RELAYDESK_PROXY_ADDRESS": f"172.30.{100 + port % 150}.10",
            "TWILIO_MODE": "sandbox",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        },
    )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{base}/ready", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        compose(project, "--profile", "small", "up", "-d")
        wait_for(ready, timeout=180, what="the container to answer /ready")
        container = compose(project, "--profile", "small", "ps", "-q", "relaydesk").strip()
        assert run("docker", "exec", container, "id", "-u").strip() == "10001"

        url = f"{base}/twilio/inbound"
        params = {
            "MessageSid": "SM" + "d1" * 16,
            "From": "+48600700801",
            "To": "+15005550006",
            "Body": "Czy kontener działa?",
        }
        forged = httpx.post(url, data=params, headers={"X-Twilio-Signature": "forged"}, timeout=10)
        assert forged.status_code == 403
        stored = httpx.post(
            url,
            data=params,
            headers={"X-Twilio-Signature": sign(url, params, AUTH_TOKEN)},
            timeout=10,
        )
        assert stored.status_code == 200, stored.text

        token = (
            run(
                "docker",
                "exec",
                container,
                "relaydesk",
                "token",
                "create",
                "ci",
                "--role",
                "viewer",
            )
            .strip()
            .splitlines()[-1]
        )
        auth = {"Authorization": f"Bearer {token}"}

        def bodies() -> list[str]:
            answer = httpx.get(f"{base}/api/messages", headers=auth, timeout=10)
            assert answer.status_code == 200, answer.text
            return [m["body"] for m in answer.json()["items"]]

        assert bodies() == ["Czy kontener działa?"]
        wait_for(
            lambda: (
                run("docker", "inspect", "--format", "{{.State.Health.Status}}", container).strip()
                == "healthy"
            ),
            timeout=180,
            what="Docker's HEALTHCHECK to call the container healthy",
        )

        compose(project, "--profile", "small", "restart")
        wait_for(ready, timeout=180, what="/ready after the restart")
        assert bodies() == ["Czy kontener działa?"]  # the volume kept the database and the token
        metrics = httpx.get(f"{base}/metrics", headers=auth, timeout=10)
        assert metrics.status_code == 200 and "relaydesk_messages_total" in metrics.text
    finally:
        subprocess.run(
            ["docker-compose", "--project-name", project.name, "--profile", "small", "down", "-v"],
            cwd=project,
            capture_output=True,
            timeout=300,
        )
