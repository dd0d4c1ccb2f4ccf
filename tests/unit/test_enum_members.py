"""Enum members without ``EnumType.__getattr__`` (ADR 49): every lookup still finds them."""

from __future__ import annotations

import enum
import subprocess
import sys
import textwrap

from pigeon.domain.messages import MessageStatus
from pigeon.enum_members import FALLBACK, drop_enum_getattr_fallback

#: Run in a new interpreter: this one dropped the fallback in the suite's conftest.
_PROBE = textwrap.dedent(
    """
    import enum
    from pigeon.enum_members import FALLBACK, drop_enum_getattr_fallback

    class Shade(enum.Enum):
        RED = 1
        CRIMSON = 1  # an alias
        name = 2  # hidden behind Enum's own ``name`` property
        value = 3

    class Bits(enum.Flag):
        A = 1
        B = 2

    before = FALLBACK in vars(enum.EnumType)
    dropped = drop_enum_getattr_fallback()
    again = drop_enum_getattr_fallback()
    found = [
        Shade.RED is Shade(1),
        Shade.CRIMSON is Shade.RED,
        Shade.name is Shade(2) and Shade.name.name == "name",
        Shade.value.value == 3,
        Shade["RED"] is Shade.RED,
        (Bits.A | Bits.B) is Bits(3),
        Shade.RED.name == "RED" and Shade.RED.value == 1,
    ]
    try:
        Shade.MISSING
        missing = "found"
    except AttributeError:
        missing = "AttributeError"
    print(before, dropped, again, all(found), missing)
    """
)


def test_drop_removes_the_fallback_and_every_member_is_still_found() -> None:
    """On 3.11 the fallback is there; dropped once, members, aliases and hidden names resolve."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True
    )
    before, dropped, again, found, missing = done.stdout.split()
    assert before == dropped  # there before exactly when this call removed it
    assert again == "False"  # the second call finds nothing to drop
    assert found == "True"
    assert missing == "AttributeError"


def test_suite_runs_without_the_fallback_as_the_processes_do() -> None:
    """The suite's interpreter has no ``EnumType.__getattr__`` (conftest), as ``serve`` has none."""
    assert FALLBACK not in vars(enum.EnumType)
    assert drop_enum_getattr_fallback() is False
    assert MessageStatus.DELIVERED is MessageStatus("delivered")
