"""SMPP 3.4 PDUs as immutable values.

One class per PDU (SMPP 3.4, section 4). Field names follow the specification. Header fields
are ``sequence_number`` and ``command_status``; ``command_id`` is a class attribute and
``command_length`` is computed by the encoder. ``sm_length`` is ``len(short_message)``.
C-Octet strings are ``str`` (latin-1, so any octet survives a round trip); octet strings are
``bytes``. Optional parameters are raw ``(tag, value)`` pairs, read typed with
:meth:`Pdu.tlv` (see :mod:`pigeon.smpp.tlv`).

All fields have defaults and are keyword-only, so a PDU reads like its specification table::

    SubmitSm(source_addr="Pigeon", destination_addr="447700900123", short_message=b"hi")

Values are not validated on construction: :func:`pigeon.smpp.codec.encode` checks them.
"""

from __future__ import annotations

from dataclasses import field
from typing import ClassVar, TypeAlias, TypeVar

from pigeon.domain.value_objects import value_object
from pigeon.smpp.constants import RESPONSE_BIT, CommandId, DestFlag, InterfaceVersion
from pigeon.smpp.tlv import Tlv, TlvSpec

__all__ = [
    "PDU_CLASSES",
    "AlertNotification",
    "BindReceiver",
    "BindReceiverResp",
    "BindTransceiver",
    "BindTransceiverResp",
    "BindTransmitter",
    "BindTransmitterResp",
    "CancelSm",
    "CancelSmResp",
    "DataSm",
    "DataSmResp",
    "DeliverSm",
    "DeliverSmResp",
    "DestAddress",
    "DistributionList",
    "EnquireLink",
    "EnquireLinkResp",
    "GenericNack",
    "Outbind",
    "Pdu",
    "QuerySm",
    "QuerySmResp",
    "ReplaceSm",
    "ReplaceSmResp",
    "SmeAddress",
    "SubmitMulti",
    "SubmitMultiResp",
    "SubmitSm",
    "SubmitSmResp",
    "Unbind",
    "UnbindResp",
    "UnsuccessSme",
]

T = TypeVar("T")


@value_object(kw_only=True)
class Pdu:
    """Base of every PDU: the header fields a caller sets, plus optional parameters."""

    command_id: ClassVar[CommandId]
    sequence_number: int = 0
    command_status: int = 0
    tlvs: tuple[Tlv, ...] = ()

    @property
    def is_response(self) -> bool:
        """True for ``*_resp`` PDUs and generic_nack."""
        return bool(self.command_id & RESPONSE_BIT)

    def tlv(self, spec: TlvSpec[T]) -> T | None:
        """Typed value of the first optional parameter with ``spec``'s tag, or None."""
        tag = spec.tag
        for t, value in self.tlvs:
            if t == tag:
                return spec.decode(value)
        return None


# --- session management -------------------------------------------------------------------


@value_object(kw_only=True)
class _Bind(Pdu):
    system_id: str = ""
    password: str = field(default="", repr=False)
    system_type: str = ""
    interface_version: int = InterfaceVersion.V34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@value_object(kw_only=True)
class BindTransmitter(_Bind):
    """bind_transmitter (4.1.1): bind to submit messages."""

    command_id: ClassVar[CommandId] = CommandId.BIND_TRANSMITTER


@value_object(kw_only=True)
class BindReceiver(_Bind):
    """bind_receiver (4.1.3): bind to receive messages."""

    command_id: ClassVar[CommandId] = CommandId.BIND_RECEIVER


@value_object(kw_only=True)
class BindTransceiver(_Bind):
    """bind_transceiver (4.1.5): bind to submit and receive."""

    command_id: ClassVar[CommandId] = CommandId.BIND_TRANSCEIVER


@value_object(kw_only=True)
class _BindResp(Pdu):
    system_id: str = ""


@value_object(kw_only=True)
class BindTransmitterResp(_BindResp):
    """bind_transmitter_resp (4.1.2); may carry sc_interface_version."""

    command_id: ClassVar[CommandId] = CommandId.BIND_TRANSMITTER_RESP


@value_object(kw_only=True)
class BindReceiverResp(_BindResp):
    """bind_receiver_resp (4.1.4); may carry sc_interface_version."""

    command_id: ClassVar[CommandId] = CommandId.BIND_RECEIVER_RESP


@value_object(kw_only=True)
class BindTransceiverResp(_BindResp):
    """bind_transceiver_resp (4.1.6); may carry sc_interface_version."""

    command_id: ClassVar[CommandId] = CommandId.BIND_TRANSCEIVER_RESP


@value_object(kw_only=True)
class Outbind(Pdu):
    """outbind (4.1.7): the SMSC asks the ESME to bind_receiver. No response."""

    command_id: ClassVar[CommandId] = CommandId.OUTBIND
    system_id: str = ""
    password: str = field(default="", repr=False)


@value_object(kw_only=True)
class Unbind(Pdu):
    """unbind (4.2.1)."""

    command_id: ClassVar[CommandId] = CommandId.UNBIND


@value_object(kw_only=True)
class UnbindResp(Pdu):
    """unbind_resp (4.2.2)."""

    command_id: ClassVar[CommandId] = CommandId.UNBIND_RESP


@value_object(kw_only=True)
class GenericNack(Pdu):
    """generic_nack (4.3.1): the answer to a PDU that could not be handled at all."""

    command_id: ClassVar[CommandId] = CommandId.GENERIC_NACK


@value_object(kw_only=True)
class EnquireLink(Pdu):
    """enquire_link (4.11.1): keep-alive."""

    command_id: ClassVar[CommandId] = CommandId.ENQUIRE_LINK


@value_object(kw_only=True)
class EnquireLinkResp(Pdu):
    """enquire_link_resp (4.11.2)."""

    command_id: ClassVar[CommandId] = CommandId.ENQUIRE_LINK_RESP


# --- message submission and delivery ------------------------------------------------------


@value_object(kw_only=True)
class _ShortMessage(Pdu):
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""

    @property
    def sm_length(self) -> int:
        """The sm_length field: octets in short_message (0..254)."""
        return len(self.short_message)


@value_object(kw_only=True)
class SubmitSm(_ShortMessage):
    """submit_sm (4.4.1): an ESME submits a short message."""

    command_id: ClassVar[CommandId] = CommandId.SUBMIT_SM


@value_object(kw_only=True)
class DeliverSm(_ShortMessage):
    """deliver_sm (4.6.1): the SMSC delivers a message or a delivery receipt.

    schedule_delivery_time, validity_period and replace_if_present_flag must be unset.
    """

    command_id: ClassVar[CommandId] = CommandId.DELIVER_SM


@value_object(kw_only=True)
class SubmitSmResp(Pdu):
    """submit_sm_resp (4.4.2); the body is omitted on the wire when the status is an error."""

    command_id: ClassVar[CommandId] = CommandId.SUBMIT_SM_RESP
    message_id: str = ""


@value_object(kw_only=True)
class DeliverSmResp(Pdu):
    """deliver_sm_resp (4.6.2); message_id is unused and normally empty."""

    command_id: ClassVar[CommandId] = CommandId.DELIVER_SM_RESP
    message_id: str = ""


@value_object
class SmeAddress:
    """A submit_multi destination that is one SME address (dest_flag 1)."""

    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""

    dest_flag: ClassVar[DestFlag] = DestFlag.SME_ADDRESS


@value_object
class DistributionList:
    """A submit_multi destination that is a distribution list name (dest_flag 2)."""

    dl_name: str = ""

    dest_flag: ClassVar[DestFlag] = DestFlag.DISTRIBUTION_LIST


DestAddress: TypeAlias = SmeAddress | DistributionList


@value_object
class UnsuccessSme:
    """One destination that submit_multi could not reach, with its error status."""

    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    error_status_code: int = 0


@value_object(kw_only=True)
class SubmitMulti(Pdu):
    """submit_multi (4.5.1): one message to up to 254 SMEs and/or distribution lists."""

    command_id: ClassVar[CommandId] = CommandId.SUBMIT_MULTI
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addresses: tuple[DestAddress, ...] = ()
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""

    @property
    def sm_length(self) -> int:
        """The sm_length field: octets in short_message (0..254)."""
        return len(self.short_message)


@value_object(kw_only=True)
class SubmitMultiResp(Pdu):
    """submit_multi_resp (4.5.2): message id and the destinations that failed."""

    command_id: ClassVar[CommandId] = CommandId.SUBMIT_MULTI_RESP
    message_id: str = ""
    unsuccess_smes: tuple[UnsuccessSme, ...] = ()


@value_object(kw_only=True)
class DataSm(Pdu):
    """data_sm (4.7.1): message transfer in either direction, payload in TLVs."""

    command_id: ClassVar[CommandId] = CommandId.DATA_SM
    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    registered_delivery: int = 0
    data_coding: int = 0


@value_object(kw_only=True)
class DataSmResp(Pdu):
    """data_sm_resp (4.7.2)."""

    command_id: ClassVar[CommandId] = CommandId.DATA_SM_RESP
    message_id: str = ""


# --- message management -------------------------------------------------------------------


@value_object(kw_only=True)
class QuerySm(Pdu):
    """query_sm (4.8.1): ask the state of a submitted message."""

    command_id: ClassVar[CommandId] = CommandId.QUERY_SM
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""


@value_object(kw_only=True)
class QuerySmResp(Pdu):
    """query_sm_resp (4.8.2)."""

    command_id: ClassVar[CommandId] = CommandId.QUERY_SM_RESP
    message_id: str = ""
    final_date: str = ""
    message_state: int = 0
    error_code: int = 0


@value_object(kw_only=True)
class CancelSm(Pdu):
    """cancel_sm (4.9.1): cancel one message, or all matching messages if message_id is empty."""

    command_id: ClassVar[CommandId] = CommandId.CANCEL_SM
    service_type: str = ""
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""


@value_object(kw_only=True)
class CancelSmResp(Pdu):
    """cancel_sm_resp (4.9.2)."""

    command_id: ClassVar[CommandId] = CommandId.CANCEL_SM_RESP


@value_object(kw_only=True)
class ReplaceSm(Pdu):
    """replace_sm (4.10.1): replace a message that is still pending."""

    command_id: ClassVar[CommandId] = CommandId.REPLACE_SM
    message_id: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = b""

    @property
    def sm_length(self) -> int:
        """The sm_length field: octets in short_message (0..254)."""
        return len(self.short_message)


@value_object(kw_only=True)
class ReplaceSmResp(Pdu):
    """replace_sm_resp (4.10.2)."""

    command_id: ClassVar[CommandId] = CommandId.REPLACE_SM_RESP


@value_object(kw_only=True)
class AlertNotification(Pdu):
    """alert_notification (4.12.1): an MS became available. No response."""

    command_id: ClassVar[CommandId] = CommandId.ALERT_NOTIFICATION
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    esme_addr_ton: int = 0
    esme_addr_npi: int = 0
    esme_addr: str = ""


PDU_CLASSES: dict[int, type[Pdu]] = {
    cls.command_id: cls
    for cls in (
        BindTransmitter,
        BindTransmitterResp,
        BindReceiver,
        BindReceiverResp,
        BindTransceiver,
        BindTransceiverResp,
        Outbind,
        Unbind,
        UnbindResp,
        GenericNack,
        EnquireLink,
        EnquireLinkResp,
        SubmitSm,
        SubmitSmResp,
        DeliverSm,
        DeliverSmResp,
        SubmitMulti,
        SubmitMultiResp,
        DataSm,
        DataSmResp,
        QuerySm,
        QuerySmResp,
        CancelSm,
        CancelSmResp,
        ReplaceSm,
        ReplaceSmResp,
        AlertNotification,
    )
}
"""command_id -> PDU class, for every PDU of SMPP 3.4."""
