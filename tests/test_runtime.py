"""Process-wide state: what runtime sets, it sets for a call or a block only."""

from __future__ import annotations

import os

from recsys_lib.runtime import temporary_environ


def test_temporary_environ_sets_and_restores(monkeypatch):
    monkeypatch.setenv("RECSYS_T_SET", "before")
    monkeypatch.delenv("RECSYS_T_UNSET", raising=False)
    with temporary_environ({"RECSYS_T_SET": "inside", "RECSYS_T_UNSET": "new"}):
        assert os.environ["RECSYS_T_SET"] == "inside"
        assert os.environ["RECSYS_T_UNSET"] == "new"
    assert os.environ["RECSYS_T_SET"] == "before"
    assert "RECSYS_T_UNSET" not in os.environ


def test_temporary_environ_can_keep_what_is_already_set(monkeypatch):
    monkeypatch.setenv("RECSYS_T_SET", "mine")
    monkeypatch.delenv("RECSYS_T_UNSET", raising=False)
    with temporary_environ({"RECSYS_T_SET": "x", "RECSYS_T_UNSET": "y"}, keep_existing=True):
        assert os.environ["RECSYS_T_SET"] == "mine"
        assert os.environ["RECSYS_T_UNSET"] == "y"
    assert "RECSYS_T_UNSET" not in os.environ


def test_temporary_environ_restores_after_an_error(monkeypatch):
    monkeypatch.delenv("RECSYS_T_UNSET", raising=False)
    try:
        with temporary_environ({"RECSYS_T_UNSET": "y"}):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert "RECSYS_T_UNSET" not in os.environ


def test_setting_reads_only_listed_variables(monkeypatch):
    import pytest

    from recsys_lib.runtime import SETTINGS, setting, setting_path

    monkeypatch.setenv("RECSYS_DATA_DIR", "  ~/ml  ")
    assert setting("RECSYS_DATA_DIR") == "~/ml"
    assert str(setting_path("RECSYS_DATA_DIR")).endswith("/ml") and "~" not in str(
        setting_path("RECSYS_DATA_DIR")
    )
    monkeypatch.setenv("RECSYS_DATA_DIR", " ")
    assert setting("RECSYS_DATA_DIR") is None and setting_path("RECSYS_DATA_DIR") is None
    monkeypatch.delenv("RECSYS_DATA_DIR")
    assert setting("RECSYS_DATA_DIR") is None
    with pytest.raises(KeyError, match="RECSYS_DATADIR.*SETTINGS"):
        setting("RECSYS_DATADIR")
    assert all(name.startswith("RECSYS_") and about for name, about in SETTINGS.items())


def test_only_runtime_reads_recsys_environment_variables():
    import re
    from pathlib import Path

    import recsys_lib

    package = Path(recsys_lib.__file__).parent
    direct = re.compile(r"(os\.environ(\.get)?\s*[\[(]|os\.getenv\()\s*[\"']RECSYS_")
    readers = [
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if direct.search(path.read_text(encoding="utf-8"))
    ]
    assert readers == [], f"read RECSYS_* through recsys_lib.runtime.setting: {readers}"


def test_atomic_write_keeps_permissions_and_the_old_file_on_failure(tmp_path, monkeypatch):
    import pytest

    from recsys_lib import runtime

    target = tmp_path / "sub" / "shard.npy"
    assert runtime.atomic_write_bytes(target, b"\x00\x01") == target
    assert target.read_bytes() == b"\x00\x01" and (target.stat().st_mode & 0o777) == 0o644
    target.chmod(0o600)
    runtime.atomic_write_text(target, "é")
    assert target.read_bytes() == "é".encode() and (target.stat().st_mode & 0o777) == 0o600

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(runtime.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        runtime.atomic_write_bytes(target, b"new")
    assert target.read_text(encoding="utf-8") == "é"
    assert list(target.parent.iterdir()) == [target]


def test_to_device_moves_the_module_in_place_and_returns_it():
    import torch

    from recsys_lib.runtime import to_device

    layer = torch.nn.Linear(2, 3).double()
    assert to_device(layer, "cpu") is layer
    assert layer.weight.device.type == "cpu" and layer.weight.dtype == torch.float64
