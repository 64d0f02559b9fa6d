"""Configuration layers, validation that names the key, and cron expressions."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import yaml

from benchd.catalog import request as request_model
from benchd.catalog import suites
from benchd.settings import DEFAULT_PORT, ConfigError, load_settings, parse_duration
from benchd.settings.cron import CronError, CronExpression
from benchd.settings.example import example

ROOT = Path(__file__).resolve().parent.parent


def settings(tmp_path: Path, text: str, env: dict[str, str] | None = None, flags: dict | None = None):
    path = tmp_path / "benchd.toml"
    path.write_text(text)
    return load_settings(path, flags, env or {})


def test_embedded_defaults_schedule_every_workload(tmp_path: Path) -> None:
    defaults = load_settings(None, None, {"HOME": str(tmp_path)})
    assert (defaults.server.host, defaults.server.port, defaults.server.token) == (
        "127.0.0.1",
        DEFAULT_PORT,
        None,
    )
    assert {s.workload for s in defaults.schedules} == {"dcgan", "siamese", "transformer", "vae"}
    vae = next(s for s in defaults.schedules if s.workload == "vae")
    assert vae.presets == ("bs128", "bs5120") and vae.interval_seconds == 6 * 3600


def test_the_printed_example_is_valid_and_schedules_what_the_default_does(tmp_path: Path) -> None:
    printed = settings(tmp_path, example())
    default = load_settings(None, None, {"HOME": str(tmp_path)})
    assert [s.workload for s in printed.schedules] == ["dcgan", "siamese", "transformer", "vae"]
    assert printed.schedules == default.schedules


def test_the_default_the_example_and_kubernetes_schedule_the_same_suite(tmp_path: Path) -> None:
    """A mixed fleet's figures are the same work whichever way each host was set up."""
    configmap = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "base" / "configmap.yaml").read_text())
    setups = [
        load_settings(None, None, {"HOME": str(tmp_path)}),
        settings(tmp_path, example()),
        settings(tmp_path, configmap["data"]["benchd.toml"]),
    ]
    for setup in setups:
        for schedule in setup.schedules:
            configs = schedule.request.configs()
            assert configs and all(suites.suite_of(c.to_json()) == "standard-v1" for c in configs), schedule


def test_a_suite_sets_presets_fraction_and_epochs_and_refuses_to_be_overridden(tmp_path: Path) -> None:
    vae = settings(tmp_path, '[workloads.vae]\nsuite = "standard-v1"\ninterval = "1h"\n').schedules[0]
    assert (vae.presets, vae.request.fraction, vae.request.epochs) == (("bs128", "bs5120"), 1.0, 2)
    with pytest.raises(ConfigError, match=r"workloads\.vae\.fraction: is set by suite"):
        settings(tmp_path, '[workloads.vae]\nsuite = "standard-v1"\ninterval = "1h"\nfraction = 0.5\n')
    with pytest.raises(ConfigError, match=r"workloads\.vae\.suite: unknown suite .standard-v9."):
        settings(tmp_path, '[workloads.vae]\nsuite = "standard-v9"\ninterval = "1h"\n')


def test_runs_belong_to_a_suite_only_as_the_suite_runs_them() -> None:
    (config,) = request_model.parse(
        {"workload": "dcgan", "presets": "bs64", "fraction": 0.02, "epochs": 2}
    ).configs()
    assert suites.suite_of(config.to_json()) == "standard-v1"
    for change in ({"fraction": 0.1}, {"batch_size": 32}, {"timing": "device"}, {"workers": 0}, {"seed": 2}):
        values = {"workload": "dcgan", "presets": "bs64", "fraction": 0.02, "epochs": 2, **change}
        (config,) = request_model.parse(values).configs()
        assert suites.suite_of(config.to_json()) is None, change


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    text = "[server]\nport = 1111\n[runs]\nqueue_size = 3\n[workloads]\n"
    assert settings(tmp_path, text).server.port == 1111
    assert settings(tmp_path, text, env={"BENCHD_PORT": "2222"}).server.port == 2222
    assert (
        settings(tmp_path, text, env={"BENCHD_PORT": "2222"}, flags={"server.port": 3333}).server.port == 3333
    )
    assert settings(tmp_path, text).runs.queue_size == 3


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[server]\nport = 70000\n", "server.port", "between 0 and 65535"),
        ("[server]\nport = inf\n", "server.port", "not a finite int"),
        ("[busy_check]\nmax_cpu_load = nan\n", "busy_check.max_cpu_load", "not a finite float"),
        ("[runs]\ntimeout = inf\n", "runs.timeout", "at most a year"),
        ('[runs]\ntimeout = "99999999d"\n', "runs.timeout", "at most a year"),
        ("[server]\nprot = 1\n", "server.prot", "unknown key"),
        ('[runs]\ntimeout = "5 weeks"\n', "runs.timeout", "not a duration"),
        ('[busy_check]\nenabled = "maybe"\n', "busy_check.enabled", "not true or false"),
        ('[workloads.resnet]\ninterval = "1h"\n', "workloads.resnet", "unknown workload"),
        ('[workloads.vae]\npresets = ["bs64"]\ninterval = "1h"\n', "workloads.vae.presets", "unknown preset"),
        ('[workloads.vae]\ninterval = "1h"\ncron = "* * * * *"\n', "workloads.vae", "exactly one of"),
        ('[workloads.vae]\ncron = "61 * * * *"\n', "workloads.vae.cron", "outside 0-59"),
        ('[workloads.vae]\ninterval = "1h"\nfraction = 0\n', "workloads.vae.fraction", "greater than 0"),
        ('[workloads.vae]\ninterval = "1h"\nfraction = nan\n', "workloads.vae.fraction", "finite number"),
        ('[workloads.vae]\ninterval = "1h"\nepochs = 1.5\n', "workloads.vae.epochs", "valid integer"),
        ('[workloads.vae]\ninterval = "1h"\ndevice = "tpu"\n', "workloads.vae.device", "'tpu' is not one of"),
        ('[workloads.vae]\ninterval = "1h"\ntiming = "wall"\n', "workloads.vae.timing", "'reference' or"),
        ('[server]\nhost = "0.0.0.0"\n', "server.token", "non-loopback"),
        ('[server]\ntoken = "short"\n', "server.token", "at least 16"),
        ('[workloads.vae]\ninterval = "1h"\ndevice = []\n', "workloads.vae.device", "a list of 1 to 64"),
        (
            '[workloads.vae]\ninterval = "1h"\ndevice = ["all", "cpu"]\n',
            "workloads.vae.device",
            "every device",
        ),
        (
            '[workloads.vae]\ninterval = "1h"\ndevice = ["cuda:0", "gpu"]\n',
            "workloads.vae.device",
            "'gpu' is not one of",
        ),
        (
            '[workloads.vae]\ninterval = "1h"\nparallel_devices = "maybe"\n',
            "workloads.vae.parallel_devices",
            "not true or false",
        ),
        ('[workloads.vae]\ninterval = "1h"\nrepeat = 0\n', "workloads.vae.repeat", "between 1 and 100"),
        ("[runs]\ntimeout = " + "9" * 4000 + "\n", "runs.timeout", "at most a year"),  # found by hypothesis
        ("[busy_check]\nmax_cpu_load = " + "9" * 4000 + "\n", "busy_check.max_cpu_load", "not a finite"),
        ('[server]\ntoken = "   "\n', "server.token", "is blank"),
        ('[server]\ntoken = "with a space inside it"\n', "server.token", "without spaces"),
        ('[server]\ntoken = "x"\ntoken_file = "t"\n', "server.token_file", "not both"),
        ('[server]\ntoken_file = "no-such-file"\n', "server.token_file", "No such file"),
        ('data_dir = "x"\n[server\n', "file", "not valid TOML"),
        ('[workloads.vae]\ninterval = "30s"\n', "workloads.vae.interval", "at least a minute"),
        ('[workloads.vae]\ninterval = "1h"\nspread = "2h"\n', "workloads.vae.spread", "not be longer"),
        ('[workloads.vae]\ncron = "0 4 * * *"\nspread = "2d"\n', "workloads.vae.spread", "a day for cron"),
        ('[runs]\ntimeout = "500ms"\n', "runs.timeout", "at least 1s"),
        ('[workloads.vae]\ninterval = "1h"\ntimeout = 0.1\n', "workloads.vae.timeout", "at least 1s"),
        ('[workloads.vae]\ncron = "0 0 31 2 *"\n', "workloads.vae.cron", "never fires"),
        ('[workloads.vae]\ncron = "0 0 30,31 2 *"\n', "workloads.vae.cron", "never fires"),
        ('[workloads.vae]\ncron = "\u0663 * * * *"\n', "workloads.vae.cron", "not a number"),
        ('[workloads.vae]\ncron = "\u00b3 * * * *"\n', "workloads.vae.cron", "not a number"),
        ('[workloads.vae]\ninterval = "1h"\nrepeat = "100"\n', "workloads.vae.repeat", "is a string"),
        ('[server]\nport = "9655"\n', "server.port", "is a string"),
        ('data_dir = ""\n', "data_dir", "not blank"),
        ('[workloads.vae]\ninterval = "1h"\nfraction = 5e-324\n', "workloads.vae.fraction", "one batch"),
        (
            '[workloads.dcgan]\ninterval = "1h"\nfraction = 0.001\npresets = ["bs1024"]\n',
            "workloads.dcgan.fraction",
            "at least 0.00609",
        ),
    ],
)
def test_errors_name_the_key_and_reason(tmp_path: Path, text: str, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(tmp_path, text)
    assert caught.value.key == key
    assert reason in str(caught.value)
    assert str(caught.value).startswith(f"config {key}: ")


def test_allowed_hosts_from_the_file_the_environment_and_flags(tmp_path: Path) -> None:
    in_file = settings(tmp_path, '[server]\nallowed_hosts = ["Benchd", ".svc.cluster.local"]\n')
    assert in_file.server.allowed_hosts == ("benchd", ".svc.cluster.local")
    in_environment = settings(tmp_path, "", env={"BENCHD_ALLOWED_HOSTS": "a.example, b"})
    assert in_environment.server.allowed_hosts == ("a.example", "b")
    assert settings(tmp_path, "", flags={"server.allowed_hosts": ["c"]}).server.allowed_hosts == ("c",)
    for bad in ('["evil.example/x"]', '["a b"]', "[1]", '"x"'):
        with pytest.raises(ConfigError, match=r"^config server.allowed_hosts: "):
            settings(tmp_path, f"[server]\nallowed_hosts = {bad}\n")


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b'data_dir = "\xff"\n', "not UTF-8"), (b"x = " + b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
     ('data_dir = "x"\n'.encode("utf-16"), "not UTF-8")],
)  # fmt: skip
def test_a_config_file_that_is_not_utf8_toml_or_nests_too_deep_is_one_error(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "benchd.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=reason) as caught:
        load_settings(path, None, {})
    assert caught.value.key == "file"


def test_environment_text_still_stands_for_numbers_and_booleans(tmp_path: Path) -> None:
    loaded = settings(tmp_path, "", env={"BENCHD_PORT": "9700", "BENCHD_BUSY_CHECK": "off"})
    assert loaded.server.port == 9700 and loaded.busy_check.enabled is False


def test_token_allows_any_address(tmp_path: Path) -> None:
    loaded = settings(tmp_path, '[server]\nhost = "0.0.0.0"\n', env={"BENCHD_TOKEN": "x" * 20})
    assert loaded.server.host == "0.0.0.0" and not loaded.loopback


def test_the_token_can_come_from_a_file_and_a_readable_secret_is_warned_about(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret-token-0123456789\n")  # a file's trailing newline is not part of the token
    secret.chmod(0o600)
    loaded = settings(tmp_path, "", env={"BENCHD_TOKEN_FILE": str(secret)})
    assert loaded.server.token == "s3cret-token-0123456789" and loaded.warnings == ()
    secret.chmod(0o644)
    assert (
        "can be read or written by others"
        in settings(tmp_path, "", env={"BENCHD_TOKEN_FILE": str(secret)}).warnings[0]
    )
    config = tmp_path / "benchd.toml"
    config.write_text('[server]\ntoken = "s3cret-token-0123456789"\n')
    config.chmod(0o640)
    (warning,) = load_settings(config, environ={}).warnings
    assert warning.startswith(f"config file {config} holds the token")
    config.chmod(0o600)
    assert load_settings(config, environ={}).warnings == ()
    assert load_settings(None, environ={"BENCHD_TOKEN": "s3cret-token-0123456789"}).warnings == ()


def test_a_schedule_runs_on_one_device_several_or_all(tmp_path: Path) -> None:
    text = (
        '[workloads.vae]\ninterval = "1h"\ndevice = "all"\n'
        '[workloads.siamese]\ninterval = "1h"\ndevice = ["cuda:1", "cuda:0", "cuda:1"]\n'
        "parallel_devices = true\n"
        '[workloads.dcgan]\ninterval = "1h"\n'
    )
    vae, siamese, dcgan = settings(tmp_path, text).schedules
    assert (vae.devices, vae.parallel_devices) == (("all",), False)
    assert (siamese.devices, siamese.parallel_devices) == (("cuda:1", "cuda:0"), True)
    assert dcgan.devices == ("auto",)


def test_durations() -> None:
    assert parse_duration("k", "500ms") == 0.5
    assert parse_duration("k", "5m") == 300
    assert parse_duration("k", 7) == 7
    assert parse_duration("k", "1d") == 86400
    with pytest.raises(ConfigError):
        parse_duration("k", True)


def test_cron_next_times() -> None:
    friday_noon = datetime(2026, 11, 27, 12, 0)
    assert CronExpression.parse("30 3 * * 1-5").next_after(friday_noon) == datetime(2026, 11, 30, 3, 30)
    assert CronExpression.parse("*/15 * * * *").next_after(friday_noon) == datetime(2026, 11, 27, 12, 15)
    assert CronExpression.parse("0 0 29 2 *").next_after(friday_noon) == datetime(2028, 2, 29, 0, 0)
    assert CronExpression.parse("0 9 * * 7").next_after(friday_noon) == datetime(2026, 11, 29, 9, 0)
    # Both day fields restricted: either matches (the 1st, or any Monday).
    both = CronExpression.parse("0 0 1 * 1")
    assert both.next_after(friday_noon) == datetime(2026, 11, 30, 0, 0)
    assert both.next_after(datetime(2026, 11, 30, 1, 0)) == datetime(2026, 12, 1, 0, 0)
    assert CronExpression.parse("0 */6 * * *").typical_interval(friday_noon) == 6 * 3600


@pytest.mark.parametrize("text", ["* * * *", "60 * * * *", "* 24 * * *", "a * * * *", "*/0 * * * *"])
def test_cron_rejects_bad_expressions(text: str) -> None:
    with pytest.raises(CronError):
        CronExpression.parse(text)
