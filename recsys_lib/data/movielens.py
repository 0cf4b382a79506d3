"""MovieLens 100K: find, download, verify, parse and validate.

The licence of MovieLens forbids redistribution, so the repository never contains the data.
:func:`load_movielens_100k` looks for a local copy in this order:

1. the ``path`` argument,
2. the ``RECSYS_DATA_DIR`` environment variable,
3. the project's download cache (``data/`` at the repository root, or ``RECSYS_CACHE_DIR``),

and otherwise downloads the official zip, checks its size and md5, extracts it safely and
moves it into the cache. A folder may be given either as the ``ml-100k`` folder itself or as
its parent.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_lib.runtime import project_home, setting, setting_path

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
ML100K_SIZE = 4_924_029
ML100K_MD5 = "0e33842e24a9c977be4e0107933c0723"
ML100K_FOLDER = "ml-100k"
ML100K_COUNTS = {"ratings": 100_000, "users": 943, "items": 1_682}

GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip

_REQUIRED_FILES = ("u.data", "u.item", "u.user")


class DataError(RuntimeError):
    """The data could not be found, fetched or validated; the message says what to do."""


@dataclass(frozen=True)
class MovieLens:
    """MovieLens 100K as three tidy frames.

    ratings: user_id, item_id, rating (1-5), timestamp (unix seconds), in file order.
    items:   item_id, title, year (float, NaN where unknown), genres (list of str).
    users:   user_id, age, gender, occupation (and zip_code only when asked for).
    """

    ratings: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    source: Path


def default_cache_dir() -> Path:
    """Where downloads are cached: ``$RECSYS_CACHE_DIR``, else ``data/`` in the project home.

    The project home is ``$RECSYS_HOME`` or the checkout found from the working directory
    (:func:`recsys_lib.runtime.project_home`), never the installed package's folder, so a
    wheel install caches beside the team's work rather than inside site-packages.
    """
    return setting_path("RECSYS_CACHE_DIR") or project_home() / "data"


def _as_ml100k_folder(path: Path) -> Path | None:
    """Accept the ml-100k folder itself or a folder that contains it."""
    for candidate in (path, path / ML100K_FOLDER):
        if (candidate / "u.data").is_file():
            return candidate
    return None


def find_movielens_100k(path: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the first local ml-100k folder in the search order, or None.

    An explicit ``path`` (or ``RECSYS_DATA_DIR``) that does not hold the data is an error,
    not a silent fallback: the caller asked for that copy.
    """
    for label, given in (
        ("path argument", path),
        ("RECSYS_DATA_DIR", setting("RECSYS_DATA_DIR")),
    ):
        if given:
            found = _as_ml100k_folder(Path(given).expanduser())
            if found is None:
                raise DataError(
                    f"{label} points at {given!s}, which holds no MovieLens 100K copy "
                    f"(expected u.data, u.item, u.user there or in {ML100K_FOLDER}/ under it). "
                    "Fix the path, or unset it to use the download cache."
                )
            return found
    return _as_ml100k_folder(default_cache_dir())


def file_digest(path: str | os.PathLike[str], algorithm: str = "md5", chunk: int = 1 << 20) -> str:
    """Hex digest of a file (any hashlib algorithm), read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def md5sum(path: Path) -> str:
    """md5 hex digest of a file (what GroupLens publishes for its zips)."""
    return file_digest(path, "md5")


def _default_fetch(url: str, dest: Path) -> None:
    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out)


def download_movielens_100k(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    url: str = ML100K_URL,
    retries: int = 4,
    backoff_s: float = 2.0,
    fetch: Callable[[str, Path], None] | None = None,
) -> Path:
    """Download, verify and extract MovieLens 100K into ``cache_dir``; return the folder.

    The zip is written to a temporary file, checked (size and md5), then extracted into a
    temporary folder with path checks, and only then moved into place, so an interrupted or
    corrupt download never leaves a half-written copy. A zip that fails its checksum is kept
    aside as ``ml-100k.zip.bad`` for inspection and never used. ``fetch(url, dest)`` can be
    replaced (tests use that); network errors are retried with exponential backoff.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    fetch = fetch or _default_fetch
    target = cache / ML100K_FOLDER
    zip_path = cache / "ml-100k.zip"

    if not (zip_path.is_file() and md5sum(zip_path) == ML100K_MD5):
        fd, tmp_name = tempfile.mkstemp(prefix="ml-100k.", suffix=".part", dir=cache)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            last_error: Exception | None = None
            for attempt in range(retries):
                try:
                    fetch(url, tmp)
                    last_error = None
                    break
                except (urllib.error.URLError, OSError, TimeoutError) as err:
                    last_error = err
                    if attempt + 1 < retries:
                        time.sleep(backoff_s * 2**attempt)
            if last_error is not None:
                raise DataError(
                    f"Could not download MovieLens 100K from {url} after {retries} tries "
                    f"({last_error}). If this machine is offline, put a copy of the ml-100k "
                    "folder somewhere and set RECSYS_DATA_DIR to it, or pass path=..."
                ) from last_error
            size, digest = tmp.stat().st_size, md5sum(tmp)
            if size != ML100K_SIZE or digest != ML100K_MD5:
                bad = cache / "ml-100k.zip.bad"
                tmp.replace(bad)
                raise DataError(
                    f"Downloaded file failed verification: {size} bytes, md5 {digest}; "
                    f"expected {ML100K_SIZE} bytes, md5 {ML100K_MD5}. It was kept aside as "
                    f"{bad} and not used. Retry later, or download it by hand and set "
                    "RECSYS_DATA_DIR to the extracted folder."
                )
            tmp.replace(zip_path)
        finally:
            tmp.unlink(missing_ok=True)

    staging = Path(tempfile.mkdtemp(prefix="ml-100k.", dir=cache))
    try:
        safe_extract(zip_path, staging)
        extracted = _as_ml100k_folder(staging)
        if extracted is None:
            raise DataError(f"{zip_path} does not contain an ml-100k folder with u.data.")
        if target.exists():
            shutil.rmtree(target)
        extracted.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def safe_extract(zip_path: Path, dest: Path) -> None:
    """Extract a zip, refusing absolute paths and members that escape ``dest`` (``..``)."""
    dest = dest.resolve()
    with zipfile.ZipFile(zip_path) as archive:
        for member in archive.infolist():
            name = member.filename
            if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
                raise DataError(f"Refusing to extract {zip_path}: absolute member path {name!r}.")
            resolved = (dest / name).resolve()
            if resolved != dest and dest not in resolved.parents:
                raise DataError(f"Refusing to extract {zip_path}: member {name!r} escapes {dest}.")
        archive.extractall(dest)


def _read_table(path: Path, names: list[str], sep: str, encoding: str = "utf-8") -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep=sep, names=names, header=None, encoding=encoding, engine="c")
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise DataError(
            f"{path} could not be parsed ({err}). The local copy looks corrupt: delete it "
            "(or fix RECSYS_DATA_DIR) so a verified copy is downloaded."
        ) from err


def parse_movielens_100k(folder: Path, *, include_zip: bool = False) -> MovieLens:
    """Parse and validate an ml-100k folder (row counts, value ranges)."""
    missing = [name for name in _REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise DataError(f"{folder} is missing {', '.join(missing)}; it is not a full ml-100k copy.")

    ratings = _read_table(folder / "u.data", ["user_id", "item_id", "rating", "timestamp"], "\t")
    item_cols = ["item_id", "title", "release_date", "video_release_date", "imdb_url", *GENRES]
    raw_items = _read_table(folder / "u.item", item_cols, "|", encoding="latin-1")
    users = _read_table(
        folder / "u.user", ["user_id", "age", "gender", "occupation", "zip_code"], "|"
    )

    counts = {"ratings": len(ratings), "users": len(users), "items": len(raw_items)}
    if counts != ML100K_COUNTS or ratings.isna().any().any():
        raise DataError(
            f"{folder} looks truncated or corrupt: found {counts}, expected {ML100K_COUNTS} "
            "with no empty fields. Delete it (or point RECSYS_DATA_DIR elsewhere) so a verified "
            "copy is downloaded."
        )
    if not ratings["rating"].between(1, 5).all():
        raise DataError(f"{folder}/u.data has ratings outside 1..5: the copy is corrupt.")

    ratings = ratings.astype({"user_id": np.int64, "item_id": np.int64, "rating": np.float32})
    genre_flags = raw_items[GENRES].to_numpy(dtype=bool)
    genre_names = np.array(GENRES, dtype=object)
    years = pd.to_datetime(raw_items["release_date"], format="%d-%b-%Y", errors="coerce").dt.year
    items = pd.DataFrame(
        {
            "item_id": raw_items["item_id"].astype(np.int64),
            "title": raw_items["title"].astype(str),
            "year": years.astype(float),
            "genres": [list(genre_names[row]) for row in genre_flags],
        }
    )
    if not include_zip:
        users = users.drop(columns="zip_code")
    return MovieLens(ratings=ratings, items=items, users=users, source=folder)


def load_movielens_100k(
    path: str | os.PathLike[str] | None = None,
    *,
    include_zip: bool = False,
    download: bool = True,
) -> MovieLens:
    """Load MovieLens 100K, downloading a verified copy into the cache when none is found.

    >>> ml = load_movielens_100k()          # doctest: +SKIP
    >>> ml.ratings.shape
    (100000, 4)
    """
    folder = find_movielens_100k(path)
    if folder is None:
        if not download:
            raise DataError(
                "No local MovieLens 100K copy found (path argument, RECSYS_DATA_DIR, "
                f"{default_cache_dir()}) and download=False. Set RECSYS_DATA_DIR to an ml-100k "
                "folder or allow the download."
            )
        folder = download_movielens_100k()
    return parse_movielens_100k(folder, include_zip=include_zip)
