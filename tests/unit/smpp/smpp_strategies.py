"""Hypothesis strategies for valid SMPP 3.4 PDUs (every field within the spec's limits)."""

from __future__ import annotations

from hypothesis import strategies as st

from pigeon.smpp import pdu as p
from pigeon.smpp.tlv import SPECS, Tlv

u8 = st.integers(0, 0xFF)
u32 = st.integers(0, 0xFFFFFFFF)
sequence = st.integers(0, 0x7FFFFFFF)


def cstr(size: int) -> st.SearchStrategy[str]:
    """A C-Octet string value of at most ``size`` octets with its NUL (latin-1, no NUL)."""
    return st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=size - 1)


smpp_time = st.one_of(
    st.just(""),
    st.text(st.characters(min_codepoint=1, max_codepoint=255), min_size=16, max_size=16),
)
short_message = st.binary(max_size=254)

_known = st.sampled_from(sorted(SPECS.values(), key=lambda s: s.tag)).flatmap(
    lambda spec: st.binary(min_size=spec.min_length, max_size=min(spec.max_length, 300)).map(
        lambda raw: (spec.tag, raw)
    )
)
_unknown = st.tuples(
    st.integers(0, 0xFFFF).filter(lambda tag: tag not in SPECS), st.binary(max_size=64)
)
tlv_list: st.SearchStrategy[tuple[Tlv, ...]] = st.lists(
    st.one_of(_known, _unknown), max_size=4
).map(tuple)


def _header(**fields: st.SearchStrategy[object]) -> dict[str, st.SearchStrategy[object]]:
    return {"sequence_number": sequence, "command_status": u32, "tlvs": tlv_list, **fields}


def _build(cls: type[p.Pdu], **fields: st.SearchStrategy[object]) -> st.SearchStrategy[p.Pdu]:
    return st.builds(cls, **_header(**fields))


_bind = {
    "system_id": cstr(16),
    "password": cstr(9),
    "system_type": cstr(13),
    "interface_version": u8,
    "addr_ton": u8,
    "addr_npi": u8,
    "address_range": cstr(41),
}
_sm = {
    "service_type": cstr(6),
    "source_addr_ton": u8,
    "source_addr_npi": u8,
    "source_addr": cstr(21),
    "dest_addr_ton": u8,
    "dest_addr_npi": u8,
    "destination_addr": cstr(21),
    "esm_class": u8,
    "protocol_id": u8,
    "priority_flag": u8,
    "schedule_delivery_time": smpp_time,
    "validity_period": smpp_time,
    "registered_delivery": u8,
    "replace_if_present_flag": u8,
    "data_coding": u8,
    "sm_default_msg_id": u8,
    "short_message": short_message,
}
_dest = st.one_of(
    st.builds(p.SmeAddress, u8, u8, cstr(21)),
    st.builds(p.DistributionList, cstr(21)),
)
_multi = {k: v for k, v in _sm.items() if not k.startswith("dest")}
_multi["dest_addresses"] = st.lists(_dest, min_size=1, max_size=6).map(tuple)

pdus: st.SearchStrategy[p.Pdu] = st.one_of(
    _build(p.BindTransmitter, **_bind),
    _build(p.BindReceiver, **_bind),
    _build(p.BindTransceiver, **_bind),
    _build(p.BindTransmitterResp, system_id=cstr(16)),
    _build(p.BindReceiverResp, system_id=cstr(16)),
    _build(p.BindTransceiverResp, system_id=cstr(16)),
    _build(p.Outbind, system_id=cstr(16), password=cstr(9)),
    _build(p.Unbind),
    _build(p.UnbindResp),
    _build(p.GenericNack),
    _build(p.EnquireLink),
    _build(p.EnquireLinkResp),
    _build(p.SubmitSm, **_sm),
    _build(p.DeliverSm, **_sm),
    _build(p.SubmitSmResp, message_id=cstr(65)),
    _build(p.DeliverSmResp, message_id=cstr(65)),
    _build(p.SubmitMulti, **_multi),
    _build(
        p.SubmitMultiResp,
        message_id=cstr(65),
        unsuccess_smes=st.lists(st.builds(p.UnsuccessSme, u8, u8, cstr(21), u32), max_size=5).map(
            tuple
        ),
    ),
    _build(
        p.DataSm,
        service_type=cstr(6),
        source_addr_ton=u8,
        source_addr_npi=u8,
        source_addr=cstr(65),
        dest_addr_ton=u8,
        dest_addr_npi=u8,
        destination_addr=cstr(65),
        esm_class=u8,
        registered_delivery=u8,
        data_coding=u8,
    ),
    _build(p.DataSmResp, message_id=cstr(65)),
    _build(
        p.QuerySm,
        message_id=cstr(65),
        source_addr_ton=u8,
        source_addr_npi=u8,
        source_addr=cstr(21),
    ),
    _build(
        p.QuerySmResp,
        message_id=cstr(65),
        final_date=smpp_time,
        message_state=u8,
        error_code=u8,
    ),
    _build(
        p.CancelSm,
        service_type=cstr(6),
        message_id=cstr(65),
        source_addr_ton=u8,
        source_addr_npi=u8,
        source_addr=cstr(21),
        dest_addr_ton=u8,
        dest_addr_npi=u8,
        destination_addr=cstr(21),
    ),
    _build(p.CancelSmResp),
    _build(
        p.ReplaceSm,
        message_id=cstr(65),
        source_addr_ton=u8,
        source_addr_npi=u8,
        source_addr=cstr(21),
        schedule_delivery_time=smpp_time,
        validity_period=smpp_time,
        registered_delivery=u8,
        sm_default_msg_id=u8,
        short_message=short_message,
    ),
    _build(p.ReplaceSmResp),
    _build(
        p.AlertNotification,
        source_addr_ton=u8,
        source_addr_npi=u8,
        source_addr=cstr(65),
        esme_addr_ton=u8,
        esme_addr_npi=u8,
        esme_addr=cstr(65),
    ),
)
"""Any valid PDU of any type."""
