"""What a worker process of ``serve`` loads: no HTTP API, no migrations, no Redis or HTTP
carrier client that its settings do not use (their memory, docs/architecture.md)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from pigeon.store import migrate

#: Opens a gateway as ``pigeon worker --parent-pid`` does (the store migrated before), closes
#: it, and prints the top-level packages it loaded.
_WORKER = """
import asyncio, dataclasses, json, sys
from pathlib import Path
import pigeon.cli
from pigeon.bootstrap import open_gateway
from pigeon.config import Settings

async def main() -> None:
    settings = Settings(data_dir=Path(sys.argv[1]), database_url=sys.argv[2], run_smpp=False)
    gateway = await open_gateway(settings, migrate_store=False)
    await gateway.close()

asyncio.run(main())
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_a_worker_of_serve_loads_no_api_migrations_redis_or_http_carrier_client(
    tmp_path: Path,
) -> None:
    """Opened on a migrated store without redis_url or HTTP carriers, a worker's gateway
    imports neither Litestar, uvicorn, Alembic, the Redis client nor aiohttp."""
    url = f"sqlite:///{tmp_path / 'pigeon.db'}"
    asyncio.run(migrate(url))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIGEON_")}
    done = subprocess.run(
        [sys.executable, "-c", _WORKER, str(tmp_path), url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert {"pigeon", "sqlalchemy"} <= loaded
    assert not {"litestar", "uvicorn", "alembic", "redis", "aiohttp"} & loaded
