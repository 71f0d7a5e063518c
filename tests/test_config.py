"""flows/config.py: defaults < TOML file < NEWSDESK_* environment < flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.config import ConfigError, Settings, load_settings


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No newsdesk.toml from the real working directory may leak in."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(tmp_path: Path, text: str, name: str = "conf.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def config_error(**kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(**kwargs)
    message = str(info.value)
    assert message and "\n" not in message
    return message


# -- defaults -------------------------------------------------------------------------------------------


def test_defaults():
    s = load_settings(env={})
    assert s == Settings()
    assert s.concurrency == 16
    assert s.host_concurrency == 2
    assert s.host_delay == 0.5
    assert s.max_bytes == 10 * 1024 * 1024
    assert s.respect_robots is True
    assert s.allow_hosts == ()
    assert s.extraction_mode == "precision"
    assert s.warehouse == "warehouse/newsdesk.duckdb"
    assert s.config_file is None


def test_worker_count():
    assert load_settings(env={}, workers=3).worker_count == 3
    assert load_settings(env={}).worker_count >= 1


# -- the file layer -----------------------------------------------------------------------------------------


def test_file_with_top_level_keys_overrides_defaults(tmp_path):
    path = write(tmp_path, 'concurrency = 4\nhost_delay = 1.25\nwarehouse = "x/w.duckdb"\n'
                           'respect_robots = false\nallow_hosts = ["127.0.0.1:8080", "localhost"]\n')
    s = load_settings(path, env={})
    assert s.concurrency == 4
    assert s.host_delay == 1.25
    assert s.warehouse == "x/w.duckdb"
    assert s.respect_robots is False
    assert s.allow_hosts == ("127.0.0.1:8080", "localhost")
    assert s.batch_size == Settings().batch_size  # untouched keys keep their default
    assert s.config_file == path


def test_file_with_newsdesk_table_overrides_defaults(tmp_path):
    path = write(tmp_path, '[newsdesk]\nconcurrency = 5\nextraction_mode = "recall"\n')
    s = load_settings(path, env={})
    assert s.concurrency == 5
    assert s.extraction_mode == "recall"


def test_file_named_by_newsdesk_config_env(tmp_path):
    path = write(tmp_path, "batch_size = 7\n")
    s = load_settings(env={"NEWSDESK_CONFIG": path})
    assert s.batch_size == 7
    assert s.config_file == path


def test_explicit_config_file_beats_newsdesk_config_env(tmp_path):
    a = write(tmp_path, "batch_size = 7\n", "a.toml")
    b = write(tmp_path, "batch_size = 9\n", "b.toml")
    assert load_settings(b, env={"NEWSDESK_CONFIG": a}).batch_size == 9


def test_newsdesk_toml_in_working_directory_is_picked_up(tmp_path):
    write(tmp_path, "min_text_chars = 42\n", "newsdesk.toml")
    s = load_settings(env={})
    assert s.min_text_chars == 42
    assert s.config_file == "newsdesk.toml"


def test_no_file_in_working_directory_means_defaults():
    assert load_settings(env={}).config_file is None


# -- the environment layer ----------------------------------------------------------------------------------


def test_env_overrides_file(tmp_path):
    path = write(tmp_path, "concurrency = 4\nbatch_size = 50\n")
    s = load_settings(path, env={"NEWSDESK_CONCURRENCY": "8"})
    assert s.concurrency == 8
    assert s.batch_size == 50


def test_env_values_are_coerced():
    s = load_settings(env={
        "NEWSDESK_MAX_BYTES": "1048576",
        "NEWSDESK_HOST_DELAY": "0.25",
        "NEWSDESK_USER_AGENT": "test-agent/1",
        "NEWSDESK_EXTRACTION_MODE": "balanced",
    })
    assert s.max_bytes == 1048576 and isinstance(s.max_bytes, int)
    assert s.host_delay == 0.25 and isinstance(s.host_delay, float)
    assert s.user_agent == "test-agent/1"
    assert s.extraction_mode == "balanced"


def test_allow_hosts_from_env_is_comma_separated():
    s = load_settings(env={"NEWSDESK_ALLOW_HOSTS": "127.0.0.1:8080, localhost,,[::1]:9000 ,"})
    assert s.allow_hosts == ("127.0.0.1:8080", "localhost", "[::1]:9000")


@pytest.mark.parametrize(("text", "expected"), [("false", False), ("0", False), ("no", False), ("off", False),
                                                ("FALSE", False), ("true", True), ("1", True), ("yes", True),
                                                (" on ", True)])
def test_bool_from_env(text, expected):
    assert load_settings(env={"NEWSDESK_RESPECT_ROBOTS": text}).respect_robots is expected


def test_unrelated_env_is_ignored():
    s = load_settings(env={"NEWSDESK_NOT_A_SETTING": "x", "CONCURRENCY": "3", "NEWSDESK_CONFIG_FILE": "nope.toml"})
    assert s == Settings()
    assert s.config_file is None


# -- the flag layer -----------------------------------------------------------------------------------------


def test_flags_override_env_and_file(tmp_path):
    path = write(tmp_path, "concurrency = 4\nhost_delay = 2.0\n")
    s = load_settings(path, env={"NEWSDESK_CONCURRENCY": "8", "NEWSDESK_HOST_DELAY": "3"}, concurrency=12)
    assert s.concurrency == 12
    assert s.host_delay == 3.0


def test_none_and_empty_tuple_flags_do_not_override():
    s = load_settings(env={"NEWSDESK_CONCURRENCY": "8", "NEWSDESK_ALLOW_HOSTS": "a,b"},
                      concurrency=None, allow_hosts=())
    assert s.concurrency == 8
    assert s.allow_hosts == ("a", "b")


def test_list_flag_becomes_tuple():
    assert load_settings(env={}, allow_hosts=["x:1", "y"]).allow_hosts == ("x:1", "y")


def test_false_flag_overrides():
    assert load_settings(env={"NEWSDESK_RESPECT_ROBOTS": "true"}, respect_robots=False).respect_robots is False


def test_with_overrides():
    base = load_settings(env={})
    assert base.with_overrides(concurrency=None) is base
    changed = base.with_overrides(concurrency="3", workers=None)
    assert changed.concurrency == 3 and changed.workers == base.workers
    with pytest.raises(ConfigError):
        base.with_overrides(concurrency=0)


# -- invalid values: one-line ConfigError --------------------------------------------------------------------


@pytest.mark.parametrize(
    "env",
    [
        {"NEWSDESK_CONCURRENCY": "many"},
        {"NEWSDESK_CONCURRENCY": "2.5"},
        {"NEWSDESK_HOST_DELAY": "soon"},
        {"NEWSDESK_RESPECT_ROBOTS": "maybe"},
    ],
)
def test_invalid_env_value(env):
    ((key, value),) = env.items()
    message = config_error(env=env)
    assert key.removeprefix("NEWSDESK_").lower() in message and repr(value) in message


def test_invalid_value_with_newline_still_gives_one_line():
    config_error(env={"NEWSDESK_MAX_BYTES": "12\n34"})


def test_invalid_value_in_file(tmp_path):
    path = write(tmp_path, 'max_retries = "lots"\n')
    assert "max_retries" in config_error(config_file=path, env={})


def test_unknown_key_in_file(tmp_path):
    path = write(tmp_path, "concurency = 4\n")
    message = config_error(config_file=path, env={})
    assert "concurency" in message and path in message


def test_unknown_key_in_newsdesk_table(tmp_path):
    path = write(tmp_path, "[newsdesk]\nbogus = 1\n")
    assert "bogus" in config_error(config_file=path, env={})


def test_config_file_key_in_file_is_refused(tmp_path):
    path = write(tmp_path, 'config_file = "other.toml"\n')
    assert "config_file" in config_error(config_file=path, env={})


def test_invalid_toml(tmp_path):
    path = write(tmp_path, "concurrency = = 4\n[unclosed\n")
    message = config_error(config_file=path, env={})
    assert "not valid TOML" in message


def test_toml_that_is_not_utf8(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_bytes(b'user_agent = "caf\xe9"\n')
    assert "not valid TOML" in config_error(config_file=str(path), env={})


def test_missing_file(tmp_path):
    message = config_error(config_file=str(tmp_path / "nope.toml"), env={})
    assert "not found" in message


def test_missing_file_from_env(tmp_path):
    assert "not found" in config_error(env={"NEWSDESK_CONFIG": str(tmp_path / "nope.toml")})


@pytest.mark.parametrize("mode", ["fast", "PRECISION", ""])
def test_extraction_mode_must_be_known(mode):
    assert "extraction_mode" in config_error(env={}, extraction_mode=mode)


@pytest.mark.parametrize("name", ["concurrency", "host_concurrency", "batch_size", "max_bytes"])
def test_counts_must_be_at_least_one(name):
    assert name in config_error(env={}, **{name: 0})
    assert name in config_error(env={"NEWSDESK_" + name.upper(): "-3"})


def test_concurrency_zero_in_file(tmp_path):
    path = write(tmp_path, "concurrency = 0\n")
    assert "concurrency" in config_error(config_file=path, env={})


def test_unknown_flag():
    assert "colour" in config_error(env={}, colour="red")


def test_newsdesk_key_that_is_not_a_table(tmp_path):
    path = write(tmp_path, "newsdesk = 1\n")
    config_error(config_file=path, env={})


def test_config_path_that_is_a_directory(tmp_path):
    (tmp_path / "conf.d").mkdir()
    config_error(config_file=str(tmp_path / "conf.d"), env={})


def test_negative_max_retries_is_rejected():
    config_error(env={"NEWSDESK_MAX_RETRIES": "-1"})


def test_load_threads_defaults_to_one_and_refuses_negatives():
    assert load_settings(env={}).load_threads == 1
    assert load_settings(env={"NEWSDESK_LOAD_THREADS": "0"}).load_threads == 0
    assert "load_threads" in config_error(env={"NEWSDESK_LOAD_THREADS": "-1"})
