"""Customers bind to us over SMPP 3.4: an asyncio driver over :mod:`pigeon.smpp`.

Wiring (see ``pigeon.bootstrap``)::

    server = SmppServer(SmppServerSettings(host, port), SmppServices(...))
    await server.start()                 # listens; returns the port
    runner handlers["smpp_deliver"] = server.deliver
    await server.stop()                  # answers in-flight submits, unbinds everyone
"""

from pigeon.smpp_server.server import SmppServer, SmppServerSettings, SmppServices

__all__ = ["SmppServer", "SmppServerSettings", "SmppServices"]
