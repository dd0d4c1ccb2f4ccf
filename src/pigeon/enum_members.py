"""Enum members read from their class at the cost of any class attribute (ADR 49).

Python 3.11's ``enum.EnumType`` defines ``__getattr__``, a fallback that Python 3.12 removed.
A metaclass with ``__getattr__`` makes every attribute read on its classes take the slow
path: ``MessageStatus.SENT`` first calls ``type.__getattribute__`` as a bound method-wrapper,
then would call ``__getattr__`` on an ``AttributeError``. That is about 140 ns per read
against 50 for a module global, and the gateway reads enum members from their classes dozens
of times per message (the SMPP session's states, receipt kinds, statuses, key modes).

On 3.11 every member is already in its class's ``__dict__`` (or, for a name such as
``name`` or ``value``, behind an ``enum.property`` that returns it), so the fallback finds
nothing the normal lookup misses: only a missing name's ``AttributeError`` reads differently.
:func:`drop_enum_getattr_fallback` deletes it once per process, at its start.
"""

from __future__ import annotations

import enum
from typing import Final

#: The attribute that Python 3.12 no longer has.
FALLBACK: Final = "__getattr__"


def drop_enum_getattr_fallback() -> bool:
    """Delete ``EnumType.__getattr__`` if this Python has it; whether it was there."""
    if FALLBACK not in vars(enum.EnumType):
        return False
    delattr(enum.EnumType, FALLBACK)
    return True
