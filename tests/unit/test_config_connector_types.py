"""``[[connectors]]`` in pigeon.toml accept the HTTP carrier types besides ``smpp``."""

from __future__ import annotations

from pathlib import Path

import pytest

from pigeon.config import ConfigError, load_settings


@pytest.mark.parametrize("kind", ["smpp", "generic_http", "twilio", "infobip"])
def test_every_connector_type_is_accepted(tmp_path: Path, kind: str) -> None:
    """Each known type loads; its options are kept for the adapter factory to check."""
    config = tmp_path / "pigeon.toml"
    config.write_text(f'[[connectors]]\nid = "c"\ntype = "{kind}"\nhost = "h"\n')
    settings = load_settings({}, config)
    assert [(c.id, c.type, dict(c.options)) for c in settings.connectors] == [
        ("c", kind, {"host": "h"})
    ]


def test_an_unknown_type_lists_the_known_ones(tmp_path: Path) -> None:
    """An unknown type is refused, naming every known type."""
    config = tmp_path / "pigeon.toml"
    config.write_text('[[connectors]]\nid = "c"\ntype = "fax"\n')
    with pytest.raises(ConfigError, match="generic_http, infobip, simulator, smpp, twilio"):
        load_settings({}, config)
