"""First start without ``PIGEON_BOOTSTRAP_ADMIN_KEY``: ``pigeon serve`` creates an operator key,
prints it once, and it manages connectors; a restart prints none."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

from support.gateway import new_gateway

PRINTED = re.compile(r"Operator key \(connectors, routes; shown once\): (pk_live_\S+)")


def _status(url: str, key: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_first_start_prints_an_operator_key_once(tmp_path: Path) -> None:
    """The printed operator key lists connectors; the demo tenant key is refused; a second
    start prints no new key."""
    gateway = new_gateway(tmp_path)
    gateway.env.pop("PIGEON_BOOTSTRAP_ADMIN_KEY", None)
    try:
        gateway.start()
        found = PRINTED.findall(gateway.output())
        assert len(found) == 1, gateway.output()
        assert _status(f"{gateway.base_url}/v1/connectors", found[0]) == 200
        tenant_key = gateway.env["PIGEON_BOOTSTRAP_API_KEY"]
        assert _status(f"{gateway.base_url}/v1/connectors", tenant_key) == 403
        gateway.stop()
        gateway.start()
        assert len(PRINTED.findall(gateway.output())) == 1
        assert _status(f"{gateway.base_url}/v1/connectors", found[0]) == 200
    finally:
        gateway.stop()
