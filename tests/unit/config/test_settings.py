from pathlib import Path

import pytest

from reelstream.config import load_settings
from reelstream.errors import ConfigError


def test_defaults_are_embedded_under_the_data_dir(tmp_path: Path) -> None:
    s = load_settings(env={"REEL_DATA_DIR": str(tmp_path)})
    assert s.embedded
    assert s.log_url == f"sqlite://{tmp_path}/log.db"
    assert s.objects_url == f"file://{tmp_path}/objects"


def test_a_bad_url_names_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"log_url \(REEL_LOG_URL\) = 'postgres://x'.*sqlite://, kafka://"):
        load_settings(env={"REEL_LOG_URL": "postgres://x"})


def test_the_config_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    config = tmp_path / "reel.toml"
    config.write_text('state_url = "cassandra://db1,db2:9042/prod"\nproducer = "from-file"\n')
    s = load_settings(env={"REEL_PRODUCER": "from-env"}, config_file=config)
    assert s.state_url == "cassandra://db1,db2:9042/prod" and s.producer == "from-env"


def test_unknown_settings_in_the_file_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "reel.toml"
    config.write_text('log_ulr = "kafka://x:1"\n')
    with pytest.raises(ConfigError, match="unknown setting.*log_ulr"):
        load_settings(env={}, config_file=config)


def test_with_servers_points_at_the_local_servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REEL_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    s = load_settings(env={"REEL_DATA_DIR": str(tmp_path)}).with_servers(kafka=True, cassandra=True, s3=True)
    assert s.log_url == "kafka://127.0.0.1:19092"
    assert s.state_url.startswith("cassandra://") and s.objects_url.startswith("s3://reelstream-origin?endpoint=")


@pytest.mark.parametrize("line", ["log_url = 5", "data_dir = 5", "namespace = 7", "ladder_mode = true",
                                  "producer = [\"a\"]"])
def test_a_setting_of_the_wrong_type_in_the_file_is_named(tmp_path: Path, line: str) -> None:
    config = tmp_path / "reel.toml"
    config.write_text(line + "\n")
    name = line.split(" ")[0]
    with pytest.raises(ConfigError, match=rf"config file .*reel.toml: {name} must be a string"):
        load_settings(env={}, config_file=config)


def test_relative_sqlite_and_file_urls_are_under_the_working_directory(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # urlparse reads "sqlite://.reel/log.db" as host ".reel", path "/log.db": it wrote /log.db.
    from reelstream.stores.factory import open_log, open_objects, open_state, replay_state_url

    monkeypatch.chdir(tmp_path)
    settings = load_settings(env={"REEL_LOG_URL": "sqlite://.reel/log.db", "REEL_STATE_URL": "sqlite://st/state.db",
                                  "REEL_OBJECTS_URL": "file://objects", "REEL_DATA_DIR": str(tmp_path / "d")})
    assert settings.log_url == f"sqlite://{tmp_path}/.reel/log.db"
    assert settings.state_url == f"sqlite://{tmp_path}/st/state.db"
    assert settings.objects_url == f"file://{tmp_path}/objects"
    open_log("sqlite://rel/log.db").close()
    open_state("sqlite://rel/state.db").close()
    open_objects("file://rel/objects").put("a", b"x")
    assert {p.name for p in (tmp_path / "rel").iterdir()} >= {"log.db", "state.db", "objects"}
    assert replay_state_url("sqlite://rel/state.db", "r1") == "sqlite://rel/state-r1.db"
    assert load_settings(env={"REEL_LOG_URL": "sqlite:///abs/log.db"}).log_url == "sqlite:///abs/log.db"


def test_a_data_dir_that_is_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="data_dir .*notes.txt.*a file, not a folder"):
        load_settings(env={"REEL_DATA_DIR": str(tmp_path / "notes.txt")})


@pytest.mark.parametrize("endpoint", ["http://s3:18333", "http://0.0.0.0:18333", "http://10.0.0.5:18333", ""])
def test_the_well_known_s3_credentials_are_refused_off_the_loopback(tmp_path: Path, endpoint: str) -> None:
    url = f"s3://reelstream-origin?endpoint={endpoint}" if endpoint else "s3://reelstream-origin"
    env = {"REEL_DATA_DIR": str(tmp_path), "REEL_OBJECTS_URL": url, "REEL_S3_ACCESS_KEY": "reelstream",
           "REEL_S3_SECRET_KEY": "reelstream-secret"}
    with pytest.raises(ConfigError, match="well-known defaults.*reel secrets"):
        load_settings(env=env)
    assert load_settings(env={**env, "REEL_S3_SECRET_KEY": "generated-x7Qd"}).s3_secret_key == "generated-x7Qd"


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:18333", "http://localhost:18333", "http://[::1]:18333"])
def test_the_well_known_s3_credentials_are_fine_on_the_loopback(tmp_path: Path, endpoint: str) -> None:
    # infra/local's server, the tests and CI (which export env.sh's defaults)
    env = {"REEL_DATA_DIR": str(tmp_path), "REEL_OBJECTS_URL": f"s3://reelstream-origin?endpoint={endpoint}",
           "REEL_S3_ACCESS_KEY": "reelstream", "REEL_S3_SECRET_KEY": "reelstream-secret"}
    assert load_settings(env=env).s3_access_key == "reelstream"
