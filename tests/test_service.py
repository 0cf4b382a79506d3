"""The HTTP service, started for real on a free loopback port: every endpoint, every bad input,
the API key, a tampered artefact and an atomic reload under traffic; then the load tester."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from recsys_lib.production.loadtest import ServiceProcess, free_port, load_test, load_test_table  # noqa: E402
from recsys_lib.production.serving import Recommender  # noqa: E402

USERS = [10, 20, 30]
ITEMS = list(range(1, 13))  # 12 items, so the default k=10 is valid


def tiny_recommender(shift: float = 0.0) -> Recommender:
    """3 users x 12 items, 2 factors; user 10 saw items 1 and 2, user 30 saw nothing."""
    rng = np.random.default_rng(0)
    user_f = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]) + shift
    item_f = rng.normal(size=(len(ITEMS), 2))
    seen = sp.csr_matrix(([1, 1, 1], ([0, 0, 1], [0, 1, 3])), shape=(3, len(ITEMS)))
    names = [f"film {i}" for i in ITEMS]
    return Recommender(USERS, ITEMS, user_f, item_f, seen, item_names=names)


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("artefacts")
    tiny_recommender().save(root / "v1")
    tiny_recommender(shift=5.0).save(root / "v2")
    tampered = tiny_recommender().save(root / "tampered")
    data = bytearray((tampered / "arrays.npz").read_bytes())
    data[-10] ^= 0xFF
    (tampered / "arrays.npz").write_bytes(bytes(data))
    return root


@pytest.fixture(scope="module")
def server(artefacts):
    with ServiceProcess(artefacts / "v1", max_batch=4) as proc:
        with httpx.Client(base_url=proc.url, timeout=10) as client:
            yield proc, client


def test_health_and_docs(server):
    _, client = server
    body = client.get("/health").json()
    assert body["status"] == "ok" and (body["n_users"], body["n_items"]) == (3, 12)
    assert len(body["sha256"]) == 64
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/recommend", "/similar", "/explain", "/reload"} <= set(paths)


def test_endpoints_answer_like_the_library(server, artefacts):
    _, client = server
    rec = Recommender.load(artefacts / "v1")
    got = client.get("/recommend", params={"user_id": 10, "k": 2}).json()
    assert got == {"user_id": 10, "items": rec.recommend(10, 2).tolist()}
    assert not {1, 2} & set(got["items"])  # the user's train items are excluded
    batch = client.post("/recommend", json={"user_ids": [10, 20], "k": 3}).json()["results"]
    assert [r["items"] for r in batch] == rec.recommend_many([10, 20], 3).tolist()
    assert client.get("/similar", params={"item_id": 1, "k": 2}).json()["items"] == (
        rec.similar_items(1, 2).tolist()
    )
    why = client.get("/explain", params={"user_id": 10, "item_id": 3}).json()
    expected = rec.explain(10, [3]).iloc[0]
    assert why["because_item_id"] == expected["because_item_id"]
    assert why["reason"] == expected["reason"] and why["reason"].startswith("because you liked")
    assert why["similarity"] == pytest.approx(expected["similarity"])


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "words"),
    [
        ("get", "/recommend", {"params": {"user_id": 99999}}, 404, "user id 99999 not in"),
        ("get", "/recommend", {"params": {"user_id": "abc"}}, 422, "user_id must be an integer"),
        ("get", "/recommend", {"params": {}}, 422, "user_id"),
        ("get", "/recommend", {"params": {"user_id": 10, "k": 0}}, 422, "k must be an integer between 1"),
        ("get", "/recommend", {"params": {"user_id": 10, "k": 13}}, 422, "k must be an integer between 1"),
        ("get", "/recommend", {"params": {"user_id": 10, "k": "x"}}, 422, "k:"),
        ("get", "/similar", {"params": {"item_id": 77}}, 404, "item id 77 not in"),
        ("get", "/similar", {"params": {"item_id": 1, "k": -1}}, 422, "k must be an integer between 1"),
        ("get", "/explain", {"params": {"user_id": 10}}, 422, "item_id"),
        ("get", "/explain", {"params": {"user_id": 10, "item_id": 77}}, 404, "item id 77"),
        ("get", "/explain", {"params": {"user_id": 30, "item_id": 1}}, 422, "no train items"),
        ("post", "/recommend", {"content": b"{not json", "headers": {"content-type": "application/json"}}, 422, "JSON"),
        ("post", "/recommend", {"json": {"k": 3}}, 422, "user_ids"),
        ("post", "/recommend", {"json": {"user_ids": [], "k": 3}}, 422, "user_ids is empty"),
        ("post", "/recommend", {"json": {"user_ids": [10, 99999]}}, 404, "user id 99999"),
        ("post", "/recommend", {"json": {"user_ids": [10], "k": 0}}, 422, "k must be an integer between 1"),
        ("post", "/recommend", {"json": {"user_ids": [10, "x"]}}, 422, "must be an integer"),
        ("post", "/recommend", {"json": {"user_ids": [10] * 5}}, 413, "over the limit of 4"),
        ("post", "/reload", {"json": {"artefact": "/"}}, 403, "not beside the first artefact"),
    ],
)  # fmt: skip
def test_bad_input_is_a_clear_4xx(server, method, path, kwargs, status, words):
    _, client = server
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]


def test_reload_swaps_atomically_under_traffic(server, artefacts):
    _, client = server
    before = client.get("/recommend", params={"user_id": 20, "k": 3}).json()["items"]
    statuses: list[int] = []
    stop, running = threading.Event(), threading.Event()

    def traffic() -> None:  # keeps asking until told to stop, at least 50 times
        with httpx.Client(base_url=client.base_url, timeout=10) as other:
            while not stop.is_set() or len(statuses) < 50:
                statuses.append(other.get("/recommend", params={"user_id": 20}).status_code)
                running.set()

    thread = threading.Thread(target=traffic)
    thread.start()
    running.wait(10)
    try:
        refused = client.post("/reload", json={"artefact": str(artefacts / "tampered")})
        assert refused.status_code == 409 and "checksum" in refused.json()["detail"]
        assert client.get("/health").json()["artefact"].endswith("v1")
        done = client.post("/reload", json={"artefact": str(artefacts / "v2")})
        assert done.status_code == 200 and done.json()["artefact"].endswith("v2")
    finally:
        stop.set()
        thread.join()
    assert statuses and set(statuses) == {200}  # no request dropped while swapping
    after = client.get("/recommend", params={"user_id": 20, "k": 3}).json()["items"]
    assert after == Recommender.load(artefacts / "v2").recommend(20, 3).tolist()
    assert client.get("/health").json()["loads"] == 2
    assert client.post("/reload").status_code == 200  # same folder again
    client.post("/reload", json={"artefact": str(artefacts / "v1")})
    assert client.get("/recommend", params={"user_id": 20, "k": 3}).json()["items"] == before


def test_tampered_artefact_is_refused_at_start(artefacts):
    with pytest.raises(RuntimeError, match="checksum"):
        ServiceProcess(artefacts / "tampered", startup_timeout_s=30).start()


def test_api_key_guards_every_endpoint_but_health(artefacts):
    with ServiceProcess(artefacts / "v1", api_key="s3cret") as proc:
        with httpx.Client(base_url=proc.url, timeout=10) as client:
            assert client.get("/health").status_code == 200
            for path in ("/recommend?user_id=10", "/similar?item_id=1"):
                denied = client.get(path)
                assert denied.status_code == 401 and "X-API-Key" in denied.json()["detail"]
                assert client.get(path, headers={"X-API-Key": "wrong"}).status_code == 401
                assert client.get(path, headers={"X-API-Key": "s3cret"}).status_code == 200
            row = load_test(proc.url, ["/recommend?user_id=10"], concurrency=2, n_requests=20,
                            warmup=0, headers={"X-API-Key": "s3cret"})  # fmt: skip
            assert row["errors"] == 0


def test_load_test_counts_answers_and_errors(server):
    proc, _ = server
    ok = load_test(proc.url, ["/recommend?user_id=10&k=2", "/health"], concurrency=4,
                   n_requests=60, warmup=5)  # fmt: skip
    assert (ok["requests"], ok["errors"]) == (60, 0)
    assert 0 < ok["p50_ms"] <= ok["p95_ms"] <= ok["p99_ms"]
    assert 0 < ok["mean_ms"] <= ok["p99_ms"] * 2  # the mean latency, for Little's law
    assert ok["requests_per_second"] > 0
    bad = load_test(proc.url, ["/recommend?user_id=99999", "/health"], concurrency=2,
                    n_requests=10, warmup=0)  # fmt: skip
    assert (bad["requests"], bad["errors"]) == (10, 5)
    table = load_test_table(proc.url, ["/health"], (1, 3), n_requests=10, repeats=2, server=proc)
    assert list(table.index) == [1, 3] and (table["errors"] == 0).all()
    assert (table["server_cpu_ms"] >= 0).all() and proc.cpu_seconds() > 0
    assert (table["requests"] == 10).all() and (table["repeats"] == 2).all()
    assert (table["mean_ms"] > 0).all()


def test_load_test_is_bounded_and_loopback_only(server):
    proc, _ = server
    with pytest.raises(ValueError, match="loopback"):
        load_test("http://example.com", ["/health"])
    with pytest.raises(ValueError, match="n_requests"):
        load_test(proc.url, ["/health"], n_requests=10**9)
    with pytest.raises(ValueError, match="paths is empty"):
        load_test(proc.url, [])
    row = load_test(proc.url, ["/health"], concurrency=1, n_requests=100_000,
                    time_limit_s=0.3, warmup=0)  # fmt: skip
    assert 0 < row["requests"] < 100_000 and row["elapsed_s"] < 5


def test_free_port_is_bindable():
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_cli_refuses_bad_artefacts_and_unset_keys(artefacts, tmp_path, monkeypatch, capsys):
    from recsys_lib.production.service import create_app, main

    assert main(["--artefact", str(artefacts / "tampered")]) == 2
    assert "checksum" in capsys.readouterr().err
    assert main(["--artefact", str(tmp_path / "none")]) == 2
    assert "holds no saved recommender" in capsys.readouterr().err
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    assert main(["--artefact", str(artefacts / "v1"), "--api-key-env", "NO_SUCH_KEY_VAR"]) == 2
    assert "NO_SUCH_KEY_VAR" in capsys.readouterr().err
    with pytest.raises(ValueError, match="max_batch"):
        create_app(artefacts / "v1", max_batch=0)


def test_request_paths_quote_ids():
    from recsys_lib.production.loadtest import request_paths

    assert request_paths(np.array([196, 7]), k=5) == [
        "/recommend?user_id=196&k=5",
        "/recommend?user_id=7&k=5",
    ]
    assert request_paths(["a b&c"]) == ["/recommend?user_id=a%20b%26c&k=10"]


def test_ids_are_parsed_as_the_catalogue_type():
    from fastapi import HTTPException

    from recsys_lib.production.service import _parse_id

    assert _parse_id("196", "i", "user_id") == 196 and _parse_id(7, "i", "user_id") == 7
    assert _parse_id(" 12 ", "u", "item_id") == 12
    assert _parse_id("u-42", "U", "user_id") == "u-42" and _parse_id(42, "U", "user_id") == "42"
    with pytest.raises(HTTPException) as err:
        _parse_id("1.5", "i", "item_id")
    assert err.value.status_code == 422 and "item_id must be an integer" in err.value.detail


# ------------------------------------------------------------------ what the service refuses
@pytest.fixture(scope="module")
def local(artefacts):
    """The app in-process (no server): enough for request validation."""
    from fastapi.testclient import TestClient

    from recsys_lib.production.service import create_app

    with TestClient(create_app(artefacts / "v1", max_batch=4)) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "words"),
    [
        ("post", "/recommend", {"json": {"user_ids": [10], "K": 2}}, "K: Extra inputs"),
        ("post", "/recommend", {"json": {"user_ids": [10], "k": 2, "extra": 1}}, "extra"),
        ("post", "/reload", {"json": {"artefakt": "v2"}}, "artefakt"),
        ("get", "/recommend", {"params": {"user_id": 10, "K": 2}}, "unknown query parameter"),
        ("get", "/similar", {"params": {"item_id": 1, "kk": 2}}, "unknown query parameter"),
        ("get", "/explain", {"params": {"user_id": 10, "item_id": 3, "k": 2}}, "takes item_id"),
        ("get", "/health", {"params": {"verbose": 1}}, "takes no query parameters"),
        ("post", "/recommend?k=3", {"json": {"user_ids": [10]}}, "unknown query parameter"),
        ("get", "/recommend", {"params": {"user_id": "1" * 60_000}}, "at most 256"),
        ("post", "/recommend", {"json": {"user_ids": ["x" * 1_000_000]}}, "at most 256"),
        ("post", "/recommend", {"json": {"user_ids": [10] * 100_001}}, "at most 100000"),
        ("get", "/recommend", {"params": {"user_id": "x" * 200}}, "must be an integer"),
    ],
)
def test_unknown_fields_and_oversized_inputs_are_refused_briefly(local, method, path, kwargs,
                                                                 words):  # fmt: skip
    response = getattr(local, method)(path, **kwargs)
    assert response.status_code == 422, response.text[:300]
    detail = response.json()["detail"]
    assert words in detail and len(response.content) < 700


def test_misspelt_k_no_longer_returns_the_default(local):
    assert local.post("/recommend", json={"user_ids": [10], "K": 2}).status_code == 422
    assert len(local.post("/recommend", json={"user_ids": [10], "k": 2}).json()["results"][0]
               ["items"]) == 2  # fmt: skip


def test_responses_carry_no_server_paths(local, artefacts):
    root = str(artefacts)
    assert local.get("/health").json()["artefact"] == "v1"
    for body in ({"artefact": str(artefacts / "tampered")}, {"artefact": str(artefacts / "gone")},
                 {"artefact": "/etc"}):  # fmt: skip
        response = local.post("/reload", json=body)
        assert response.status_code in (403, 409)
        assert root not in response.text and "/etc" not in response.text.replace(
            str(body["artefact"]), ""
        )


@pytest.mark.parametrize("key", ["", "clé", "with space", "tab\t"])
def test_an_empty_or_non_ascii_key_is_a_start_up_error(artefacts, key):
    from recsys_lib.production.service import create_app

    with pytest.raises(ValueError, match="api_key must be a non-empty string of printable ASCII"):
        create_app(artefacts / "v1", api_key=key)


@pytest.mark.parametrize("bad", [0, 100_001, 2.5, True])
def test_max_batch_is_bounded(artefacts, bad):
    from recsys_lib.production.service import create_app

    with pytest.raises(ValueError, match="max_batch must be"):
        create_app(artefacts / "v1", max_batch=bad)


def test_keys_compare_as_bytes_so_non_ascii_headers_are_401(artefacts):
    from fastapi.testclient import TestClient

    from recsys_lib.production.service import create_app

    with TestClient(create_app(artefacts / "v1", api_key="s3cret")) as client:
        for sent in (b"", b"s3cretx", "s3cré".encode(), "s3cré".encode("latin-1")):
            response = client.get("/recommend", params={"user_id": 10},
                                  headers={"X-API-Key": sent})  # fmt: skip
            assert response.status_code == 401, (sent, response.text)
        raw = client.get("/recommend", params={"user_id": 10},
                         headers=[(b"X-API-Key", "clé".encode())])  # fmt: skip
        assert raw.status_code == 401
        assert client.get("/recommend", params={"user_id": 10},
                          headers={"X-API-Key": "s3cret"}).status_code == 200  # fmt: skip
