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
