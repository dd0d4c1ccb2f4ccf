"""Settings: TOML plus PIGEON_* variables, environment first, every problem reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from pigeon.config import ConfigError, Settings, load_settings, writer_batch, writer_tasks


def test_defaults_give_embedded_sqlite(tmp_path: Path) -> None:
    """With nothing set, the database is SQLite inside the data directory."""
    settings = load_settings({"PIGEON_CONFIG": str(tmp_path / "absent.toml")})
    assert settings == Settings()
    assert settings.effective_database_url == "sqlite:///pigeon-data/pigeon.db"


def test_environment_overrides_toml(tmp_path: Path) -> None:
    """A PIGEON_* variable wins over the same key in pigeon.toml."""
    config = tmp_path / "pigeon.toml"
    config.write_text('http_port = 9000\nmax_segments = 5\nlog_format = "json"\n')
    settings = load_settings({"PIGEON_HTTP_PORT": "9100"}, config)
    assert settings.http_port == 9100
    assert settings.max_segments == 5
    assert settings.log_format == "json"


def test_booleans_and_paths_are_converted(tmp_path: Path) -> None:
    """Strings from the environment become booleans, numbers and paths."""
    settings = load_settings(
        {
            "PIGEON_RUN_WORKERS": "no",
            "PIGEON_DATA_DIR": str(tmp_path),
            "PIGEON_SIMULATOR_RECEIPT_DELAY": "0.5",
            "PIGEON_CONFIG": str(tmp_path / "absent.toml"),
        }
    )
    assert settings.run_workers is False
    assert settings.data_dir == tmp_path
    assert settings.simulator_receipt_delay == 0.5


def test_every_problem_is_listed(tmp_path: Path) -> None:
    """Several bad values produce one error naming each of them."""
    with pytest.raises(ConfigError) as info:
        load_settings(
            {
                "PIGEON_HTTP_PORT": "eighty",
                "PIGEON_MAX_SEGMENTS": "0",
                "PIGEON_BOOTSTRAP_API_KEY": "secret",
                "PIGEON_DATABASE_URL": "mysql://x",
                "PIGEON_CONFIG": str(tmp_path / "absent.toml"),
            }
        )
    text = str(info.value)
    for name in ("http_port", "max_segments", "bootstrap_api_key", "database_url"):
        assert name in text


def test_unknown_toml_key_is_an_error(tmp_path: Path) -> None:
    """A misspelt setting in the file is reported rather than ignored."""
    config = tmp_path / "pigeon.toml"
    config.write_text("http_prot = 1\n")
    with pytest.raises(ConfigError, match="http_prot"):
        load_settings({}, config)


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    """--config naming a file that does not exist fails clearly."""
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings({}, tmp_path / "nope.toml")


def test_smpp_settings(tmp_path: Path) -> None:
    """The SMPP server can be switched off; the bootstrap SMPP password must fit SMPP 3.4."""
    absent = str(tmp_path / "absent.toml")
    settings = load_settings(
        {"PIGEON_RUN_SMPP": "false", "PIGEON_SMPP_PORT": "2776", "PIGEON_CONFIG": absent}
    )
    assert (settings.run_smpp, settings.smpp_port) == (False, 2776)
    assert load_settings({"PIGEON_CONFIG": absent}).run_smpp is True
    with pytest.raises(ConfigError, match="bootstrap_smpp_password"):
        load_settings({"PIGEON_BOOTSTRAP_SMPP_PASSWORD": "ninechars", "PIGEON_CONFIG": absent})


def test_connector_tables_are_read_and_checked(tmp_path: Path) -> None:
    """[[connectors]] tables become ConnectorConfig values; the default must name one."""
    config = tmp_path / "pigeon.toml"
    config.write_text(
        'default_connector = "b"\n'
        '[[connectors]]\nid = "a"\ntype = "smpp"\nhost = "h"\nport = 1\n'
        '[[connectors]]\nid = "b"\ntype = "smpp"\nwindow = 5\n'
    )
    settings = load_settings({}, config)
    assert [c.id for c in settings.connectors] == ["a", "b"]
    assert settings.connectors[1].options == {"window": 5}
    assert settings.default_connector == "b"


def test_bad_connector_tables_are_reported(tmp_path: Path) -> None:
    """Missing ids, unknown types, duplicates and a dangling default are all listed."""
    config = tmp_path / "pigeon.toml"
    config.write_text(
        'default_connector = "zz"\n'
        '[[connectors]]\ntype = "smpp"\n'
        '[[connectors]]\nid = "a"\ntype = "carrier-pigeon"\n'
        '[[connectors]]\nid = "b"\ntype = "smpp"\n'
        '[[connectors]]\nid = "b"\ntype = "smpp"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_settings({}, config)
    text = str(info.value)
    for fragment in ("needs an id", "carrier-pigeon", "unique", "default_connector"):
        assert fragment in text


def test_writer_batches_default_by_database(tmp_path: Path) -> None:
    """Left at 0, the workers' batches are 64 on SQLite (one shared lock), 256 on PostgreSQL
    (round trips and commits); serve's are 64 on both."""
    absent = str(tmp_path / "absent.toml")
    sqlite = load_settings({"PIGEON_CONFIG": absent})
    postgres = load_settings(
        {"PIGEON_CONFIG": absent, "PIGEON_DATABASE_URL": "postgresql://u@127.0.0.1/db"}
    )

    assert (writer_batch(sqlite), writer_batch(sqlite, worker=True)) == (64, 64)
    assert (writer_batch(postgres), writer_batch(postgres, worker=True)) == (64, 256)


def test_writer_batches_set_explicitly_win(tmp_path: Path) -> None:
    """A value set for either batch bound is used on any database; a negative one is refused."""
    env = {
        "PIGEON_CONFIG": str(tmp_path / "absent.toml"),
        "PIGEON_DATABASE_URL": "postgresql://u@127.0.0.1/db",
        "PIGEON_WRITER_MAX_BATCH": "16",
        "PIGEON_WORKER_WRITER_MAX_BATCH": "8",
    }
    settings = load_settings(env)

    assert (writer_batch(settings), writer_batch(settings, worker=True)) == (16, 8)
    with pytest.raises(ConfigError, match="writer_max_batch"):
        load_settings({**env, "PIGEON_WRITER_MAX_BATCH": "-1"})


def test_writer_tasks_are_one_in_regular_workers_beside_otp_workers(tmp_path: Path) -> None:
    """PostgreSQL's writer runs 4 transactions at once in ``serve`` and 1 in the regular
    workers while OTPs have workers of their own (4 without them); set values win."""
    absent = {"PIGEON_CONFIG": str(tmp_path / "absent.toml")}
    default = load_settings(absent)
    alone = load_settings({**absent, "PIGEON_WORKER_URGENT_PROCESSES": "0"})
    explicit = load_settings(
        {**absent, "PIGEON_WRITER_TASKS": "2", "PIGEON_WORKER_WRITER_TASKS": "3"}
    )

    assert (writer_tasks(default), writer_tasks(default, worker=True)) == (4, 1)
    assert (writer_tasks(alone), writer_tasks(alone, worker=True)) == (4, 4)
    assert (writer_tasks(explicit), writer_tasks(explicit, worker=True)) == (2, 3)
    with pytest.raises(ConfigError, match="worker_writer_tasks"):
        load_settings({**absent, "PIGEON_WORKER_WRITER_TASKS": "65"})


def test_synchronous_commit_is_on_unless_turned_off(tmp_path: Path) -> None:
    """``synchronous_commit`` is on by default, can be turned off, refuses a non-boolean."""
    empty = tmp_path / "pigeon.toml"
    empty.write_text("")
    assert load_settings(environ={}, config_file=empty).synchronous_commit is True
    off = load_settings(environ={"PIGEON_SYNCHRONOUS_COMMIT": "false"}, config_file=empty)
    assert off.synchronous_commit is False
    with pytest.raises(ConfigError, match="synchronous_commit"):
        load_settings(environ={"PIGEON_SYNCHRONOUS_COMMIT": "normal"}, config_file=empty)


def test_worker_lanes_are_checked(tmp_path: Path) -> None:
    """``job_lane`` takes all, urgent or regular; ``worker_urgent_processes`` 0 to 8."""
    empty = tmp_path / "pigeon.toml"
    empty.write_text("")
    assert load_settings(environ={}, config_file=empty).worker_urgent_processes == 1
    assert load_settings(environ={}, config_file=empty).job_lane == "all"
    lane = load_settings(environ={"PIGEON_JOB_LANE": "urgent"}, config_file=empty)
    assert lane.job_lane == "urgent"
    with pytest.raises(ConfigError, match="job_lane"):
        load_settings(environ={"PIGEON_JOB_LANE": "fast"}, config_file=empty)
    with pytest.raises(ConfigError, match="worker_urgent_processes"):
        load_settings(environ={"PIGEON_WORKER_URGENT_PROCESSES": "9"}, config_file=empty)


def test_redis_url_is_off_by_default_and_must_name_a_redis_server(tmp_path: Path) -> None:
    """``redis_url`` is empty by default (each process paces alone); set, it must be a
    redis://, rediss:// or unix:// address, and ``redis_key_prefix`` comes with it."""
    absent = str(tmp_path / "absent.toml")
    assert load_settings({"PIGEON_CONFIG": absent}).redis_url == ""
    settings = load_settings(
        {
            "PIGEON_CONFIG": absent,
            "PIGEON_REDIS_URL": "redis://127.0.0.1:6379/2",
            "PIGEON_REDIS_KEY_PREFIX": "eu:",
        }
    )
    assert (settings.redis_url, settings.redis_key_prefix) == ("redis://127.0.0.1:6379/2", "eu:")
    with pytest.raises(ConfigError, match="redis_url must start with"):
        load_settings({"PIGEON_CONFIG": absent, "PIGEON_REDIS_URL": "http://127.0.0.1:6379"})
    with pytest.raises(ConfigError, match="redis_url: Port could not be cast"):
        load_settings({"PIGEON_CONFIG": absent, "PIGEON_REDIS_URL": "redis://127.0.0.1:x/0"})


def test_webhook_slots_per_host_default_to_half_the_runners_slots_and_are_checked(
    tmp_path: Path,
) -> None:
    """A webhook receiver may hold 128 of the runner's 256 slots by default; the setting
    takes 1 to 10,000 and refuses 0."""
    empty = tmp_path / "pigeon.toml"
    empty.write_text("")
    settings = load_settings(environ={}, config_file=empty)
    assert (settings.webhook_slots_per_host, settings.worker_concurrency) == (128, 256)
    set_low = load_settings(environ={"PIGEON_WEBHOOK_SLOTS_PER_HOST": "8"}, config_file=empty)
    assert set_low.webhook_slots_per_host == 8
    with pytest.raises(ConfigError, match="webhook_slots_per_host"):
        load_settings(environ={"PIGEON_WEBHOOK_SLOTS_PER_HOST": "0"}, config_file=empty)
