import io
import shutil
import urllib.error
import zipfile
from pathlib import Path

import pytest

from recsys_lib.data import movielens as data
from recsys_lib.data.movielens import DataError


def test_real_copy_parses_with_expected_shapes(movielens):
    assert movielens.ratings.shape == (100_000, 4)
    assert list(movielens.ratings.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert len(movielens.users) == 943 and "zip_code" not in movielens.users
    items = movielens.items.set_index("item_id")
    assert items.loc[1, "title"] == "Toy Story (1995)"
    assert items.loc[1, "genres"] == ["Animation", "Children's", "Comedy"]
    assert items.loc[1, "year"] == 1995
    # u.item is latin-1: this title has an accented character.
    assert any("é" in t for t in movielens.items["title"])


def test_zip_code_only_when_asked(movielens):
    with_zip = data.parse_movielens_100k(movielens.source, include_zip=True)
    assert "zip_code" in with_zip.users


def make_copy(src: Path, dest: Path) -> Path:
    folder = dest / "ml-100k"
    folder.mkdir(parents=True)
    for name in ("u.data", "u.item", "u.user"):
        shutil.copy(src / name, folder / name)
    return folder


def test_truncated_local_copy_is_rejected_with_advice(movielens, tmp_path):
    folder = make_copy(movielens.source, tmp_path)
    lines = (folder / "u.data").read_text().splitlines()
    (folder / "u.data").write_text("\n".join(lines[:-10]) + "\n")
    with pytest.raises(DataError, match="truncated or corrupt.*99990"):
        data.load_movielens_100k(tmp_path)


def test_search_order_explicit_path_then_env(movielens, tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_DATA_DIR", str(tmp_path / "nowhere"))
    assert data.find_movielens_100k(movielens.source) == movielens.source
    with pytest.raises(DataError, match="RECSYS_DATA_DIR points at"):
        data.find_movielens_100k()
    monkeypatch.delenv("RECSYS_DATA_DIR")
    monkeypatch.setenv("RECSYS_CACHE_DIR", str(tmp_path / "cache"))
    assert data.find_movielens_100k() is None
    with pytest.raises(DataError, match="download=False"):
        data.load_movielens_100k(download=False)


def fake_zip(src: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in ("u.data", "u.item", "u.user"):
            archive.write(src / name, f"ml-100k/{name}")
    return buffer.getvalue()


def test_download_verifies_then_moves_into_place(movielens, tmp_path, monkeypatch):
    payload = fake_zip(movielens.source)
    monkeypatch.setattr(data, "ML100K_SIZE", len(payload))
    import hashlib

    monkeypatch.setattr(data, "ML100K_MD5", hashlib.md5(payload).hexdigest())
    calls = []

    def flaky_fetch(url, dest):
        calls.append(url)
        if len(calls) < 3:
            raise urllib.error.URLError("temporary failure")
        Path(dest).write_bytes(payload)

    folder = data.download_movielens_100k(tmp_path, fetch=flaky_fetch, backoff_s=0)
    assert len(calls) == 3 and folder == tmp_path / "ml-100k"
    assert data.parse_movielens_100k(folder).ratings.shape == (100_000, 4)
    assert not list(tmp_path.glob("*.part"))  # no temporary file left behind
    # A second call uses the verified cached zip and does not fetch again.
    data.download_movielens_100k(tmp_path, fetch=flaky_fetch, backoff_s=0)
    assert len(calls) == 3


def test_checksum_mismatch_keeps_file_aside_and_installs_nothing(tmp_path):
    def bad_fetch(url, dest):
        Path(dest).write_bytes(b"not the movielens zip")

    with pytest.raises(DataError, match="failed verification.*kept aside"):
        data.download_movielens_100k(tmp_path, fetch=bad_fetch, backoff_s=0)
    assert (tmp_path / "ml-100k.zip.bad").read_bytes() == b"not the movielens zip"
    assert not (tmp_path / "ml-100k").exists() and not (tmp_path / "ml-100k.zip").exists()


def test_offline_gives_actionable_message(tmp_path):
    def offline(url, dest):
        raise urllib.error.URLError("Name or service not known")

    with pytest.raises(DataError, match="RECSYS_DATA_DIR"):
        data.download_movielens_100k(tmp_path, fetch=offline, retries=2, backoff_s=0)
    assert not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize("member", ["../evil.txt", "/etc/evil.txt", "ml-100k/../../evil.txt"])
def test_safe_extract_refuses_escaping_members(tmp_path, member):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr(member, "x")
    with pytest.raises(DataError, match="Refusing to extract"):
        data.safe_extract(archive, tmp_path / "out")


def test_md5sum(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert data.md5sum(path) == "900150983cd24fb0d6963f7d28e17f72"


def test_file_digest_any_algorithm(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert data.file_digest(path, "sha256") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert data.file_digest(path) == data.md5sum(path)
