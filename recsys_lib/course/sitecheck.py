"""Open every page of the built course site in headless Chromium and check what a reader sees.

    python -m recsys_lib.course.sitecheck build/site --screenshots build/site-check

For each ``*.html`` page (index first): load it from disk, take a screenshot, and check that
every ``<img>`` loaded, the maths is typeset (``<math>`` elements drawn with a width, none
holding TeX or an error, no ``$$`` or TeX commands left in the rendered Markdown), no output
shows a warning (e.g. tqdm's IProgress one), every internal link
points at an existing page and anchor, nothing was requested from outside the site folder
(external requests are blocked and counted), and the console logged no error.

Needs the ``playwright`` package and a Chromium binary (Debian's ``chromium`` package works;
``CHROMIUM_PATH`` overrides the search). Playwright drives it; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from playwright.sync_api import Browser

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

_INSPECT = """() => {
  const images = Array.from(document.images);
  const maths = Array.from(document.querySelectorAll('math'));
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 80));
  const markdown = Array.from(document.querySelectorAll('.jp-RenderedMarkdown'))
    .map(e => { const c = e.cloneNode(true);
                c.querySelectorAll('script, code, pre, math').forEach(x => x.remove());
                return c.textContent; }).join('\\n');
  const raw = (markdown.match(/\\$\\$|\\\\(frac|sum|mathbb|text|cos|hat|le|in)\\b/g) || []);
  return {
    images: images.length, broken_images: broken,
    math: maths.length,
    math_errors: document.querySelectorAll('merror, code.tex').length
      + maths.filter(m => m.getBoundingClientRect().width === 0 || m.textContent.includes('\\\\')).length,
    raw_tex: raw.slice(0, 5),
    warnings: Array.from(document.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]'))
      .map(e => e.textContent).filter(t => /Warning/.test(t)).map(t => t.trim().slice(0, 120)),
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href')),
    ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id),
  };
}"""


@dataclass
class PageReport:
    """What the browser found on one page; ``problems`` is empty when the page is fine."""

    page: str
    images: int = 0
    math: int = 0
    screenshot: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary: ``$CHROMIUM_PATH`` or the first found on PATH."""
    given = os.environ.get("CHROMIUM_PATH")
    if given:
        return given if Path(given).is_file() else None
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _internal_link_problems(href: str, page: Path, site: Path, ids: set[str]) -> str | None:
    parts = urlsplit(href)
    if parts.scheme in ("http", "https", "mailto", "data", "javascript"):
        return None  # outside links are allowed to exist; they are only never loaded
    if not parts.path:  # "#anchor" within the page
        anchor = parts.fragment
        found = not anchor or anchor in ids or unquote(anchor) in ids
        return None if found else f"anchor {href} not on the page"
    target = (page.parent / unquote(parts.path)).resolve()
    if site.resolve() not in target.parents and target != site.resolve():
        return f"link {href} leaves the site folder"
    return None if target.is_file() else f"link {href} points at a missing file"


def check_page(
    browser: Browser, page_path: Path, site: Path, screenshot_dir: Path | None
) -> PageReport:
    """Load one page in a fresh browser context and inspect it (see the module docstring)."""
    report = PageReport(page=page_path.name)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    external: list[str] = []
    errors: list[str] = []

    def route(r: Any) -> None:
        url = r.request.url
        if url.startswith(("file:", "data:", "blob:", "about:")):
            r.continue_()
        else:
            external.append(url[:100])
            r.abort()

    tab.route("**/*", route)
    tab.on("console", lambda m: errors.append(m.text[:200]) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)[:200]))
    tab.on("requestfailed", lambda r: errors.append(f"failed to load {r.url[:100]}"))
    try:
        tab.goto(page_path.resolve().as_uri(), wait_until="load", timeout=60_000)
        found = tab.evaluate(_INSPECT)
        if screenshot_dir is not None:
            shot = screenshot_dir / f"{page_path.stem}.png"
            tab.screenshot(path=str(shot))
            report.screenshot = str(shot)
    finally:
        context.close()
    report.images, report.math = found["images"], found["math"]
    problems = report.problems
    problems += [f"image not loaded: {src}" for src in found["broken_images"]]
    if found["math_errors"]:
        problems.append(f"{found['math_errors']} formula(s) not typeset")
    if found["raw_tex"]:
        problems.append(f"untypeset TeX left in the text: {found['raw_tex']}")
    problems += [f"warning in an output: {w}" for w in found["warnings"]]
    ids = set(found["ids"])
    problems += [
        p for h in found["links"] if (p := _internal_link_problems(h, page_path, site, ids))
    ]
    problems += [f"external request blocked: {u}" for u in external]
    problems += [f"console error: {e}" for e in errors if not e.startswith("failed to load http")]
    return report


def check_site(
    site_dir: str | os.PathLike[str], screenshot_dir: str | os.PathLike[str] | None = None
) -> list[PageReport]:
    """Check every page of ``site_dir`` (index first) in headless Chromium; one report each.

    Raises RuntimeError when no Chromium binary is found, ImportError without playwright.
    """
    from playwright.sync_api import sync_playwright

    site = Path(site_dir)
    pages = sorted(site.glob("*.html"), key=lambda p: (p.name != "index.html", p.name))
    if not pages:
        raise FileNotFoundError(f"no .html pages in {site}; build the site first (make docs).")
    binary = find_chromium()
    if binary is None:
        raise RuntimeError(
            f"no Chromium found (tried $CHROMIUM_PATH and {BROWSER_NAMES}); install one, e.g. "
            "`apt-get install chromium`."
        )
    shots = Path(screenshot_dir) if screenshot_dir is not None else None
    if shots is not None:
        shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=binary, headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
        try:
            return [check_page(browser, page, site, shots) for page in pages]
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recsys_lib.course.sitecheck", description=__doc__
    )
    parser.add_argument("site", type=Path, help="folder built by `make docs` (build/site)")
    parser.add_argument("--screenshots", type=Path, default=None, help="folder for PNG shots")
    args = parser.parse_args(argv)
    reports = check_site(args.site, args.screenshots)
    print("| page | images | maths | problems |\n|---|---:|---:|---|")
    for r in reports:
        print(f"| {r.page} | {r.images} | {r.math} | {'; '.join(r.problems) or 'none'} |")
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    raise SystemExit(main())
