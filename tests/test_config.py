"""The typed config: TOML -> dataclasses, errors naming the key, overrides from main."""

from __future__ import annotations

import dataclasses
import re
import stat
from pathlib import Path

import pytest

from sfu.config import IceServer, SfuConfig
from townhall.cli import parse_args, resolve_config
from townhall.config import (
    SECRETS_FILE,
    AuthConfig,
    Config,
    ConfigError,
    PolicyConfig,
    RecorderSettings,
    ServerConfig,
    load_config,
    load_or_create_secrets,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "config.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "townhall.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file() -> None:
    config = load_config(None)
    assert config == Config(server=ServerConfig(), auth=AuthConfig(), sfu=SfuConfig())
    assert config.server.public_url == "http://127.0.0.1:8080"
    assert config.server.data_dir == Path("data")


def test_the_example_file_states_the_defaults() -> None:
    assert load_config(EXAMPLE) == load_config(None)


def test_the_example_file_documents_every_key() -> None:
    text = EXAMPLE.read_text()
    sections = {
        "server": ServerConfig,
        "auth": AuthConfig,
        "policy": PolicyConfig,
        "sfu": SfuConfig,
        "recorder": RecorderSettings,
    }
    for section, kind in sections.items():
        assert f"[{section}]" in text
        for field in dataclasses.fields(kind):
            pattern = rf"^#? ?({field.name} = |\[\[{section}\.{field.name}\]\])"
            assert re.search(pattern, text, re.MULTILINE), (
                f"{section}.{field.name} is not documented in config.example.toml"
            )
    for field in dataclasses.fields(IceServer):
        assert re.search(rf"^# {field.name} = ", text, re.MULTILINE), field.name


def test_a_full_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[server]
host = "0.0.0.0"
port = 9000
data_dir = "/var/lib/townhall"
max_body_bytes = 2048

[auth]
api_key = "an-api-key"
token_secret = "0123456789abcdef0123456789abcdef"
token_ttl_s = 60

[sfu]
ice_addresses = ["127.0.0.1", "::1"]
keyframe_request_interval_s = 2
packet_cache_size = 512
udp_receive_buffer_bytes = 1048576
max_participants_per_meeting = 10

[[sfu.ice_servers]]
urls = "stun:stun.example.test:3478"

[[sfu.ice_servers]]
urls = ["turn:turn.example.test:3478", "turns:turn.example.test:5349"]
username = "u"
credential = "c"
""",
    )
    config = load_config(path)
    assert config.server == ServerConfig(
        host="0.0.0.0",
        port=9000,
        # A wildcard address is not reachable: the derived URL uses loopback.
        public_url="http://127.0.0.1:9000",
        data_dir=Path("/var/lib/townhall"),
        max_body_bytes=2048,
    )
    assert config.auth == AuthConfig(
        api_key="an-api-key", token_secret="0123456789abcdef0123456789abcdef", token_ttl_s=60
    )
    assert config.sfu == SfuConfig(
        ice_addresses=("127.0.0.1", "::1"),
        ice_servers=(
            IceServer(urls=("stun:stun.example.test:3478",)),
            IceServer(
                urls=("turn:turn.example.test:3478", "turns:turn.example.test:5349"),
                username="u",
                credential="c",
            ),
        ),
        keyframe_request_interval_s=2.0,
        packet_cache_size=512,
        udp_receive_buffer_bytes=1048576,
        max_participants_per_meeting=10,
    )


def test_a_policy_section(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[policy]
require_waiting_room = true
allow_anonymous_join = false
max_participants = 25
allowed_domains = ["Example.test"]
blocked_users = ["Mallory@Example.test"]
recording_permissions = "none"
screen_share_permissions = "host"
chat_permissions = "host"
require_e2ee = false
""",
    )
    assert load_config(path).policy == PolicyConfig(
        require_waiting_room=True,
        allow_anonymous_join=False,
        max_participants=25,
        allowed_domains=("example.test",),
        blocked_users=("mallory@example.test",),
        recording_permissions="none",
        screen_share_permissions="host",
        chat_permissions="host",
    )


def test_public_url_is_kept_without_trailing_slash(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\npublic_url = "https://meet.example.test/"\n')
    assert load_config(path).server.public_url == "https://meet.example.test"


def test_ipv6_host_gets_brackets_in_the_derived_url(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nhost = "::1"\nport = 8443\n')
    assert load_config(path).server.public_url == "http://[::1]:8443"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[sfu]\npacket_cache_size = "big"', "sfu.packet_cache_size: expected integer, got string"),
        ("[server]\nport = true", "server.port: expected integer, got boolean"),
        ("[server]\nport = 1.5", "server.port: expected integer, got float"),
        ("[server]\nport = 70000", "server.port: must be between 1 and 65535, got 70000"),
        ("[server]\nportt = 80", "server.portt: unknown key"),
        ("[servre]\nport = 80", "servre: unknown key"),
        ("server = 3", "server: expected table, got integer"),
        ('[server]\npublic_url = "meet.example.test"', "server.public_url: must start with"),
        ("[server]\nmax_body_bytes = 0", "server.max_body_bytes: must be >= 1, got 0"),
        ('[auth]\ntoken_secret = "short"', "auth.token_secret: must be at least 32 characters"),
        ("[auth]\napi_key = 12345678", "auth.api_key: expected string, got integer"),
        ("[sfu]\nkeyframe_request_interval_s = -1", "sfu.keyframe_request_interval_s: must be"),
        (
            '[sfu]\nkeyframe_request_interval_s = "1"',
            "sfu.keyframe_request_interval_s: expected number",
        ),
        ('[sfu]\nice_addresses = "127.0.0.1"', "sfu.ice_addresses: expected array of strings"),
        ('[sfu]\nice_addresses = ["localhost"]', "sfu.ice_addresses[0]: 'localhost' is not an IP"),
        ("[sfu]\nice_addresses = []", "sfu.ice_addresses: must not be empty"),
        ("[sfu]\nice_addresses = [1]", "sfu.ice_addresses[0]: expected non-empty string, got"),
        ("[[sfu.ice_servers]]\nusername = 'u'", "sfu.ice_servers[0].urls: is required"),
        ('[[sfu.ice_servers]]\nurls = "http://x"', "sfu.ice_servers[0].urls[0]: must start with"),
        ('[[sfu.ice_servers]]\nurls = "stun:x"\npassword = "p"', "sfu.ice_servers[0].password"),
        ('[sfu]\nice_servers = "stun:x"', "sfu.ice_servers: expected array of tables, got string"),
        ("[policy]\nrequire_waiting_room = 1", "policy.require_waiting_room: expected boolean"),
        ("[policy]\nmax_participants = 0", "policy.max_participants: must be >= 1, got 0"),
        ('[policy]\nchat_permissions = "hosts"', "policy.chat_permissions: must be one of host"),
        ('[policy]\nallowed_domains = ["@x.test"]', "policy.allowed_domains[0]: '@x.test'"),
        ('[policy]\nblocked_users = "a@x.test"', "policy.blocked_users: expected array"),
        ("[policy]\nrequire_2fa = true", "policy.require_2fa: unknown key"),
        ('[recorder]\nencryption_key = "c2hvcnQ="', "recorder.encryption_key: expected base64"),
        ('[recorder]\nencryption_key = "not base64!"', "recorder.encryption_key: expected base64"),
        ("[recorder]\nretention_days = -1", "recorder.retention_days: must be >= 0"),
        ('[recorder]\nformat = "mp3"', "recorder.format: must be one of webm, mkv"),
        ('[recorder]\ndevice = "tpu"', "recorder.device: must be one of auto, cpu, cuda"),
        ("[recorder]\nworkers = 0", "recorder.workers: must be between 1 and 64"),
        ('[recorder]\nlanguage = "English"', "recorder.language: 'English' is not a language"),
        ('[recorder]\nmodel = "tiny.en"', "recorder.model: speech model 'tiny.en' is not a dir"),
        ('[recorder]\nllm_base_url = "ftp://x"\nllm_model = "m"', "recorder.llm_base_url: must"),
        ('[recorder]\nllm_base_url = "http://127.0.0.1:1/v1"', "recorder.llm_model: is required"),
        ('[recorder]\nllm_model = "m"', "recorder.llm_base_url: is required"),
        ("[recorder]\ndownload_link_ttl_s = 0", "recorder.download_link_ttl_s: must be between"),
        ("[recorder]\nauto_transcribe = 1", "recorder.auto_transcribe: expected boolean"),
        ("[recorder]\ntranscribe = true", "recorder.transcribe: unknown key"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert str(caught.value).startswith(message)


def test_a_recorder_section(tmp_path: Path) -> None:
    key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    model = tmp_path / "model"
    model.mkdir()
    for name in ("model.bin", "config.json", "tokenizer.json"):
        (model / name).write_text("{}")
    path = write(
        tmp_path,
        f"""
[recorder]
storage_root = "/srv/recordings"
encryption_key = "{key}"
retention_days = 0
retention_interval_s = 600
format = "mkv"
live_captions = true
language = "en"
model = "{model}"
device = "cpu"
workers = 2
llm_base_url = "http://127.0.0.1:11434/v1"
llm_model = "llama3.1"
""",
    )
    recorder = load_config(path).recorder
    assert recorder == dataclasses.replace(
        RecorderSettings(),
        storage_root=Path("/srv/recordings"),
        encryption_key=key,
        retention_days=0,
        retention_interval_s=600.0,
        format="mkv",
        live_captions=True,
        language="en",
        model=str(model),
        device="cpu",
        workers=2,
        llm_base_url="http://127.0.0.1:11434/v1",
        llm_model="llama3.1",
    )


def test_recorder_secrets_come_from_the_environment() -> None:
    key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
    environ = {"TOWNHALL_RECORDING_KEY": key, "TOWNHALL_LLM_API_KEY": "sk-test"}
    recorder = resolve_config(parse_args(["serve"]), environ).recorder
    assert (recorder.encryption_key, recorder.llm_api_key) == (key, "sk-test")


def test_not_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.toml")


def test_environment_overrides_the_file_and_flags_override_both(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[server]\nhost = "127.0.0.2"\nport = 7000\n[auth]\napi_key = "from-file"'
    )
    environ = {"TOWNHALL_PORT": "7001", "TOWNHALL_API_KEY": "from-env", "HOME": "/root"}
    config = resolve_config(parse_args(["serve", "--config", str(path)]), environ)
    assert (config.server.host, config.server.port) == ("127.0.0.2", 7001)
    assert config.auth.api_key == "from-env"
    assert config.server.public_url == "http://127.0.0.2:7001"

    args = parse_args(["serve", "--config", str(path), "--port", "7002", "--data-dir", "/srv/th"])
    config = resolve_config(args, environ)
    assert config.server.port == 7002
    assert config.server.data_dir == Path("/srv/th")


def test_every_environment_variable(tmp_path: Path) -> None:
    environ = {
        "TOWNHALL_API_KEY": "env-api-key",
        "TOWNHALL_HOST": "0.0.0.0",
        "TOWNHALL_PORT": "9100",
        "TOWNHALL_DATA_DIR": str(tmp_path),
        "TOWNHALL_PUBLIC_URL": "https://meet.example.test",
    }
    config = resolve_config(parse_args(["serve"]), environ)
    assert config.auth.api_key == "env-api-key"
    assert config.server == ServerConfig(
        host="0.0.0.0", port=9100, public_url="https://meet.example.test", data_dir=tmp_path
    )


def test_empty_environment_variables_are_ignored() -> None:
    config = resolve_config(parse_args(["serve"]), {"TOWNHALL_PORT": "", "TOWNHALL_HOST": ""})
    assert config.server == ServerConfig()


def test_a_bad_environment_variable_is_named() -> None:
    with pytest.raises(ConfigError, match="^TOWNHALL_PORT: expected integer, got 'http'"):
        resolve_config(parse_args(["serve"]), {"TOWNHALL_PORT": "http"})


def test_secrets_are_generated_once_and_kept_private(tmp_path: Path) -> None:
    first = load_or_create_secrets(AuthConfig(), tmp_path / "data")
    path = tmp_path / "data" / SECRETS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first.api_key) >= 32 and len(first.token_secret) >= 32
    assert first.api_key != first.token_secret
    assert load_or_create_secrets(AuthConfig(), tmp_path / "data") == first


def test_configured_secrets_win_and_are_not_written(tmp_path: Path) -> None:
    auth = AuthConfig(api_key="configured-key", token_secret="t" * 32)
    secrets = load_or_create_secrets(auth, tmp_path)
    assert (secrets.api_key, secrets.token_secret) == ("configured-key", "t" * 32)
    assert not (tmp_path / SECRETS_FILE).exists()


def test_a_configured_key_keeps_the_generated_token_secret(tmp_path: Path) -> None:
    generated = load_or_create_secrets(AuthConfig(), tmp_path)
    mixed = load_or_create_secrets(AuthConfig(api_key="configured-key"), tmp_path)
    assert mixed.api_key == "configured-key"
    assert mixed.token_secret == generated.token_secret
    # The stored key is not replaced: dropping the setting brings it back.
    assert load_or_create_secrets(AuthConfig(), tmp_path) == generated


def test_a_loosened_secrets_file_is_made_private_again(tmp_path: Path) -> None:
    load_or_create_secrets(AuthConfig(), tmp_path)
    path = tmp_path / SECRETS_FILE
    path.chmod(0o644)
    load_or_create_secrets(AuthConfig(), tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_corrupt_secrets_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / SECRETS_FILE).write_text("{not json")
    with pytest.raises(ConfigError, match="secrets.json: not valid JSON"):
        load_or_create_secrets(AuthConfig(), tmp_path)
