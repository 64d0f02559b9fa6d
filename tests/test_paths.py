"""The data directory follows platform conventions unless overridden."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchd import paths


def test_env_override_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BENCHD_DATA_DIR", str(tmp_path / "x"))
    assert paths.default_data_dir() == tmp_path / "x"


def test_linux_uses_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BENCHD_DATA_DIR", raising=False)
    monkeypatch.setattr(paths.sys, "platform", "linux")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert paths.default_data_dir() == tmp_path / "xdg" / "benchd"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/is/ignored")
    assert paths.default_data_dir() == tmp_path / ".local" / "share" / "benchd"


def test_macos_uses_application_support(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("BENCHD_DATA_DIR", raising=False)
    monkeypatch.setattr(paths.sys, "platform", "darwin")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert paths.default_data_dir() == tmp_path / "Library" / "Application Support" / "benchd"


def test_unwritable_directory_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(paths.DataDirError, match="is not writable"):
        paths.ensure_writable(blocker / "data")
