"""Config loading: defaults, generated secrets, environment overrides, errors naming the key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from appliance.bootstrap import ensure_config
from appliance.config import load, parse_config
from appliance.errors import ConfigError


def test_init_generates_private_file_with_secrets(tmp_path: Path) -> None:
    settings, created = ensure_config(tmp_path / "d")
    assert created
    mode = stat.S_IMODE(settings.config_path.stat().st_mode)
    assert mode == 0o600
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o700
    config = settings.config
    assert len(config.auth.jwt_secret.get_secret_value()) >= 32
    assert config.turn.secret.get_secret_value()
    assert config.storage.secret_key.get_secret_value()
    assert config.setup.token.get_secret_value()
    # Secrets never show in reprs (logs).
    assert config.auth.jwt_secret.get_secret_value() not in repr(config)


def test_init_never_overwrites(tmp_path: Path) -> None:
    first, _ = ensure_config(tmp_path)
    second, created = ensure_config(tmp_path)
    assert not created
    assert second.config.auth.jwt_secret == first.config.auth.jwt_secret


def test_two_inits_have_different_secrets(tmp_path: Path) -> None:
    a, _ = ensure_config(tmp_path / "a")
    b, _ = ensure_config(tmp_path / "b")
    assert a.config.auth.jwt_secret != b.config.auth.jwt_secret


def test_unknown_key_is_named(tmp_path: Path) -> None:
    settings, _ = ensure_config(tmp_path)
    text = settings.config_path.read_text().replace("[web]", "[web]\nprot = 9000", 1)
    settings.config_path.write_text(text)
    with pytest.raises(ConfigError, match=r"web\.prot: unknown key"):
        load(tmp_path)


def test_unknown_section_is_named() -> None:
    with pytest.raises(ConfigError, match=r"chats: unknown key"):
        parse_config({"chats": {"x": 1}})


def test_bad_value_is_named() -> None:
    with pytest.raises(ConfigError, match=r"web\.port"):
        parse_config({"web": {"port": "eighty"}})
    with pytest.raises(ConfigError, match=r"database\.synchronous"):
        parse_config({"database": {"synchronous": "OFF"}})


def test_wildcard_origin_refused() -> None:
    with pytest.raises(ConfigError, match=r"web\.public_origins"):
        parse_config({"web": {"public_origins": ["*"]}})


def test_invalid_toml(tmp_path: Path) -> None:
    (tmp_path / "appliance.toml").write_text("[web\nport=1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(tmp_path)


def test_missing_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="appliance init"):
        load(tmp_path)


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ensure_config(tmp_path)
    monkeypatch.setenv("APPLIANCE_WEB__PORT", "9123")
    monkeypatch.setenv("APPLIANCE_AUTH__ACCESS_TTL", "60")
    monkeypatch.setenv("APPLIANCE_WEB__PUBLIC_ORIGINS", '["https://chat.example.org"]')
    config = load(tmp_path).config
    assert config.web.port == 9123
    assert config.auth.access_ttl == 60
    assert config.web.public_origins == ["https://chat.example.org"]


def test_bad_environment_value_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ensure_config(tmp_path)
    monkeypatch.setenv("APPLIANCE_WEB__PORT", "0")
    with pytest.raises(ConfigError, match=r"web\.port"):
        load(tmp_path)


def test_unknown_environment_key_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ensure_config(tmp_path)
    monkeypatch.setenv("APPLIANCE_WEB__PROT", "1")
    with pytest.raises(ConfigError, match=r"web\.prot: unknown key"):
        load(tmp_path)


def test_data_dir_variable_is_not_a_config_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ensure_config(tmp_path)
    monkeypatch.setenv("APPLIANCE_DATA_DIR", str(tmp_path))
    assert load(tmp_path).config.web.port == 8080


def test_docs_name_every_key() -> None:
    from appliance.config import AppConfig

    doc = (Path(__file__).resolve().parent.parent / "docs" / "config.md").read_text()
    for section, field in AppConfig.model_fields.items():
        assert f"## `[{section}]`" in doc, section
        assert field.annotation is not None
        for key in field.annotation.model_fields:
            assert f"| `{key}` |" in doc, f"{section}.{key}"


def test_recording_keys_checked() -> None:
    config = parse_config({"recording": {"host_addresses": ["127.0.0.1", "::1"]}}).recording
    assert config.host_addresses == ["127.0.0.1", "::1"]
    assert config.passthrough is True and config.max_concurrent == 4 and config.web_url == ""
    with pytest.raises(ConfigError, match=r"recording\.host_addresses"):
        parse_config({"recording": {"host_addresses": ["box.local"]}})
    with pytest.raises(ConfigError, match=r"recording\.max_concurrent"):
        parse_config({"recording": {"max_concurrent": 0}})
    with pytest.raises(ConfigError, match=r"recording\.web_url"):
        parse_config({"recording": {"web_url": "127.0.0.1:8080"}})
