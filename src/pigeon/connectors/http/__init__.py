"""HTTP carrier connectors, one module per API shape (see :mod:`.base` for what they share).

- :class:`GenericHttpConnector`: a carrier described by configuration (templates, paths).
- :class:`TwilioStyleConnector`: Twilio's Messages API and its look-alikes.
- :class:`InfobipStyleConnector`: Infobip's JSON SMS API and its look-alikes.

Each takes ``(settings, receipt_sink, clock, mo_sink=None)`` like the SMPP connector, and
answers the carrier's callbacks through ``handle_receipt_callback`` and
``handle_inbound_callback`` (a :class:`CarrierCallback` in, a :class:`CallbackResult` out),
which the REST layer mounts at ``/v1/carriers/{connector_id}/receipts`` and ``.../inbound``.
"""

from pigeon.connectors.http.base import (
    CallbackResult,
    CarrierCallback,
    HttpCarrierConnector,
    HttpConnectorSettings,
)
from pigeon.connectors.http.generic import GenericHttpConnector, GenericHttpSettings
from pigeon.connectors.http.infobip import InfobipStyleConnector, InfobipStyleSettings
from pigeon.connectors.http.twilio import TwilioStyleConnector, TwilioStyleSettings

__all__ = [
    "CallbackResult",
    "CarrierCallback",
    "GenericHttpConnector",
    "GenericHttpSettings",
    "HttpCarrierConnector",
    "HttpConnectorSettings",
    "InfobipStyleConnector",
    "InfobipStyleSettings",
    "TwilioStyleConnector",
    "TwilioStyleSettings",
]
