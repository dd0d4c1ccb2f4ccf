"""``pigeon connectors`` and ``pigeon routes`` as real processes on a fresh data directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def pigeon(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``pigeon ARGS`` on ``data_dir`` and capture its output."""
    env = {**os.environ, "PIGEON_DATA_DIR": str(data_dir), "PIGEON_LOG_LEVEL": "WARNING"}
    env.pop("PIGEON_DATABASE_URL", None)
    env.pop("PIGEON_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "pigeon", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=data_dir.parent,
    )


def succeed(data_dir: Path, *args: str) -> str:
    """Run ``pigeon ARGS``, require exit code 0, and return its standard output."""
    done = pigeon(data_dir, *args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def test_connectors_and_routes_round_trip_with_validation(tmp_path: Path) -> None:
    """Bad connectors and routes exit 1 naming the problem code; good ones are stored, listed
    with masked secrets, and a routed connector cannot be removed."""
    data = tmp_path / "data"
    bad = pigeon(data, "connectors", "add", "x", "--type", "fax")
    assert bad.returncode == 1
    assert "invalid_connector" in bad.stderr
    succeed(
        data,
        *("connectors", "add", "tw", "--type", "twilio"),
        *("--set", "account_sid=AC1", "--set", "auth_token=tok-secret"),
        *("--set", "throughput_per_second=5"),
    )
    (connector,) = json.loads(succeed(data, "connectors", "list"))
    assert connector["options"] == {
        "account_sid": "AC1",
        "auth_token": "********",
        "throughput_per_second": 5,
    }
    routes = tmp_path / "routes.toml"
    routes.write_text('[[routes]]\nid = "main"\ndefault = true\ncandidates = ["nowhere"]\n')
    refused = pigeon(data, "routes", "set", "--file", str(routes))
    assert refused.returncode == 1
    assert "invalid_routes" in refused.stderr
    routes.write_text('[[routes]]\nid = "main"\ndefault = true\ncandidates = ["tw"]\n')
    succeed(data, "routes", "set", "--file", str(routes))
    assert json.loads(succeed(data, "routes", "list")) == [
        {"id": "main", "default": True, "candidates": ["tw"]}
    ]
    in_use = pigeon(data, "connectors", "remove", "tw")
    assert in_use.returncode == 1
    assert "connector_in_use" in in_use.stderr
    succeed(data, "connectors", "disable", "tw")
    (connector,) = json.loads(succeed(data, "connectors", "list"))
    assert connector["enabled"] is False
