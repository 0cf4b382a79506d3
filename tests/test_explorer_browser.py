"""The explorer page in a real browser: headless Chromium (playwright) against the service
started with uvicorn on a free loopback port, on an artefact built from generated own data with
the course's text encoder. Skipped, with the reason, where playwright or Chromium is missing.

Screenshots go to build/explorer/ (1280x800 and a 420 px wide window)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("playwright.sync_api")

from recsys_lib.course.sitecheck import find_chromium  # noqa: E402
from recsys_lib.data.owndata import write_example_dataset  # noqa: E402
from recsys_lib.production.loadtest import ServiceProcess  # noqa: E402
from recsys_lib.production.service import build_artefact  # noqa: E402
from recsys_lib.runtime import project_home  # noqa: E402

CHROMIUM = find_chromium()
pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no Chromium found ($CHROMIUM_PATH, chromium, google-chrome); install one, e.g. "
        "`apt-get install chromium`, to run the explorer's browser test",
    ),
    pytest.mark.xdist_group("explorer-browser"),  # one worker: one service, one browser
]

LOOPBACK = ("http://127.0.0.1", "data:", "about:")
LABELLED = """() => Array.from(document.querySelectorAll('input, textarea, select'))
  .filter(e => e.type !== 'hidden' && !e.closest('[hidden]'))
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
  .map(e => e.id || e.outerHTML.slice(0, 60))"""


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    root = tmp_path_factory.mktemp("explorer-browser")
    data = write_example_dataset(root / "shop", n_users=60, n_items=80, seed=0)
    folder = build_artefact(root / "artefacts" / "own", dataset=str(data),
                            sequence={"dim": 16, "layers": 1, "heads": 1, "epochs": 3})  # fmt: skip
    with ServiceProcess(folder) as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
        yield chromium
        chromium.close()


def open_page(browser, url: str, width: int, height: int):
    """A fresh tab that records console errors and blocks (and records) non-loopback requests."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    problems: list[str] = []

    def route(r) -> None:
        if r.request.url.startswith(LOOPBACK):
            r.continue_()
        else:
            problems.append(f"external request: {r.request.url[:100]}")
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text[:200]}")
            if m.type in ("error", "warning") else None)  # fmt: skip
    page.on("pageerror", lambda e: problems.append(f"page error: {str(e)[:200]}"))
    page.goto(url + "/", wait_until="load")
    page.wait_for_function(
        "document.getElementById('provenance').textContent.startsWith('Dataset')"
    )
    return context, page, problems


def shots() -> Path:
    folder = project_home() / "build" / "explorer"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_page_end_to_end_at_1280x800(service, browser):
    context, page, problems = open_page(browser, service.url, 1280, 800)
    try:
        assert page.evaluate(LABELLED) == []
        assert "shop" in page.text_content("#provenance")
        # one user: search, pick, every model's list with reasons
        page.fill("#user-query", "1")
        page.press("#user-query", "Enter")
        page.wait_for_selector("#model-lists .card")
        cards = page.locator("#model-lists .card")
        models = [cards.nth(i).get_attribute("data-model") for i in range(cards.count())]
        assert models == ["popularity", "als", "ease", "text", "hybrid", "sequence"]
        for i, model in enumerate(models):
            items = cards.nth(i).locator("li")
            assert items.count() == 10, model
            reasons = [items.nth(j).locator(".why").text_content() for j in range(10)]
            word = "users interacted" if model == "popularity" else "because you liked"
            if model == "sequence":  # measured drops: an item may have no positive one
                assert any(word in r for r in reasons) and all(reasons), reasons
            else:
                assert all(word in r for r in reasons), (model, reasons)
            assert "nDCG@10" in cards.nth(i).locator(".metric").text_content()
        assert page.locator("#history li").count() > 0
        page.screenshot(path=str(shots() / "explorer-user-1280x800.png"))
        # a new user: search films, tick two, recommend
        page.fill("#item-query", "hiking")
        page.press("#item-query", "Enter")
        page.wait_for_selector("#item-results input")
        boxes = page.locator("#item-results input")
        boxes.nth(0).check()
        boxes.nth(1).check()
        page.click("#cold-user-go")
        page.wait_for_selector("#cold-user-lists .card")
        cold = page.locator("#cold-user-lists .card")
        assert [cold.nth(i).get_attribute("data-model") for i in range(cold.count())] == [
            "text",
            "hybrid",
        ]
        assert "because you liked" in cold.nth(0).locator("li .why").first.text_content()
        page.locator("#cold-user-section").scroll_into_view_if_needed()
        page.screenshot(path=str(shots() / "explorer-cold-user-1280x800.png"))
        # a new film: who would be shown it
        page.fill("#film-title", "Summit trail guide")
        page.fill("#film-genres", "hiking|outdoor")
        page.fill("#film-description", "Routes and maps for mountain hikes.")
        page.click("#film-form button")
        page.wait_for_selector("#film-users tbody tr", timeout=60_000)
        assert page.locator("#film-users tbody tr").count() == 10
        assert "Summit trail guide" in page.text_content("#film-text")
        assert "Hiking" in page.locator("#film-similar li").first.text_content()
        page.locator("#cold-film-section").scroll_into_view_if_needed()
        page.screenshot(path=str(shots() / "explorer-cold-film-1280x800.png"))
        assert page.text_content("#status") == ""  # no error shown to the reader
    finally:
        context.close()
    assert problems == []


def test_narrow_window_and_keyboard_only(service, browser):
    context, page, problems = open_page(browser, service.url, 420, 800)
    try:
        for _ in range(20):  # Tab from the top of the page to the user id field
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "user-query":
                break
        assert page.evaluate("document.activeElement.id") == "user-query"
        page.keyboard.type("2")
        page.keyboard.press("Enter")
        page.wait_for_selector("#model-lists .card")
        assert page.locator("#model-lists .card").count() == 6
        for _ in range(5):  # on past the Find button to the matching users
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.dataset.user") is not None:
                break
        assert page.evaluate("document.activeElement.dataset.user") is not None
        page.keyboard.press("Enter")
        page.wait_for_function("document.getElementById('status').textContent === ''")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 420, f"the page scrolls sideways at 420 px ({width} px wide)"
        boxes = page.evaluate(
            "Array.from(document.querySelectorAll('#model-lists .card'))"
            ".map(c => c.getBoundingClientRect().left)"
        )
        assert len(set(round(b) for b in boxes)) == 1  # one column: cards stacked
        page.screenshot(path=str(shots() / "explorer-user-420px.png"), full_page=False)
    finally:
        context.close()
    assert problems == []
