"""The API answers as its OpenAPI document says, for generated input (schemathesis).

A real `relaydesk serve` gets examples, boundary values and random requests for every
operation of /openapi.json: a fixed seed and a bounded number per operation, so a run
is the same every time and fits CI. It must give no 5xx, no dropped connection, no
status code the document does not list, and no response that breaks its schema (a
documented 502, an outside service out of reach, is the one 5xx allowed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.processes import Deployment

# Real relaydesk processes (serve, worker, CLI subprocesses): the e2e tier.
pytestmark = pytest.mark.e2e

ST = Path(sys.executable).with_name("st")
SEED = os.environ.get("CONTRACT_SEED", "20261205")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
# Run last, on their own: revoking tokens would revoke the run's own; the emulator's
# knobs (latency up to a minute) would slow every Twilio call after them.
LAST = ("/api/tokens/{token_id}", "/sandbox/config", "/sandbox/reset")


def _config(deployment: Deployment, token: str) -> Path:
    """The checks, and where a 5xx is allowed: a documented 502 (an outside service).

    An operation that asks an AI provider, ElevenLabs or Twilio answers 502 when that
    service cannot be reached, as it cannot from the test machine once a generated
    request points it at some host; that answer must still be documented.
    """
    document = httpx.get(
        f"{deployment.url}/openapi.json", headers={"Authorization": f"Bearer {token}"}
    ).json()
    upstream = sorted(
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if "502" in operation["responses"]
    )
    assert upstream, "no operation documents a 502"
    lines = ["[checks]", "enabled = false"]
    lines += [f"{check}.enabled = true" for check in CHECKS]
    lines += [
        "",
        "[[operations]]",
        f"include-name = {json.dumps(upstream)}",
        "checks.not_a_server_error.enabled = false",
    ]
    path = deployment.data_dir / "schemathesis.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _schemathesis(deployment: Deployment, token: str, *select: str) -> str:
    args = [
        str(ST),
        "--config-file",
        str(_config(deployment, token)),
        "run",
        f"{deployment.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--seed",
        SEED,
        "--max-examples",
        os.environ.get("CONTRACT_EXAMPLES", "12"),
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "1",
        "--request-timeout",
        "60",
        "--generation-database",
        "none",
        "--suppress-health-check",
        "all",
        "--no-color",
        *select,
    ]
    done = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=deployment.data_dir,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-12000:] + "\n--- server ---\n" + deployment.logs_text()
    assert " generated" in report, report[-2000:]  # it really ran
    return report


def test_every_operation_answers_as_its_description_says(tmp_path: Path) -> None:
    deployment = Deployment(
        tmp_path,
        # The local AI model is left out: a preview answers "not available" at once
        # instead of running a model on the CPU for every generated request.
        LLM_MODEL_PATH=str(tmp_path / "no-model.gguf"),
        LOG_LEVEL="WARNING",
    )
    try:
        deployment.start()
        token = deployment.run("token", "create", "contract", "--role", "admin")
        token = token.strip().splitlines()[-1]
        excluded = [arg for path in LAST for arg in ("--exclude-path", path)]
        _schemathesis(deployment, token, *excluded)
        included = [arg for path in LAST for arg in ("--include-path", path)]
        _schemathesis(deployment, token, *included)
    finally:
        deployment.stop()
