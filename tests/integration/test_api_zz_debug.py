from test_api_http import *  # noqa
import asyncio, threading
from sqlalchemy import text

async def test_dbg(api, database):
    print("test loop", id(asyncio.get_running_loop()), threading.get_ident())
    async def probe():
        print("app loop", id(asyncio.get_running_loop()), threading.get_ident())
        from pigeon.store.database import _noop
        try:
            await database.write(_noop)
        except Exception as e:
            import traceback; traceback.print_exc()
        return {"store": True}
    object.__setattr__(api.services, "readiness", probe)
    r = await api.client.get("/readyz")
    print(r.text)
    assert False
