"""The labeling page in a real browser at archive scale: key press → next card visible,
and the background answer post's round trip (label written + progress + the next
cards), p50/p95.

Run: .venv/bin/python -m bench.labeling_browser [--videos 100000] [--presses 60]
Uses its own database (cvsa_bench_labeling_browser) on the embedded server and the same
corpus as ``bench/labeling.py`` (a veteran and seven other labelers, ~3 labels per video);
the labeler measured is the veteran, whose history covers the head of every queue. The
page is served by Django's WSGI handler in a thread (DEBUG off, static files collected) and driven by
headless Chromium (``/usr/bin/chromium``) through Playwright, at a labeler's pace: each
key press waits for the previous answer to be saved.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_database import setup_django  # noqa: E402

BENCH_DATABASE = "cvsa_bench_labeling_browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORD = "bench-browser-password"

# Records each swap of the card (MutationObserver) and each answer's response time.
_INSTRUMENT = """() => {
    window.__swaps = []; window.__saves = [];
    const main = document.querySelector('.label-main') || document.body;
    window.__lastAid = document.getElementById('label-card').dataset.videoAid;
    new MutationObserver(() => {
        const card = document.getElementById('label-card');
        if (card && card.dataset.videoAid !== window.__lastAid) {
            window.__lastAid = card.dataset.videoAid;
            if (window.__pressedAt) window.__swaps.push(performance.now() - window.__pressedAt);
        }
    }).observe(main, {childList: true, subtree: true});
    document.addEventListener('keydown', () => { window.__pressedAt = performance.now(); }, true);
}"""


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def _serve() -> tuple[str, _ThreadingServer]:
    """The production WSGI stack (DEBUG off; WhiteNoise serves the collected static files)."""
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application

    call_command("collectstatic", interactive=False, verbosity=0)
    server = make_server("127.0.0.1", 0, get_wsgi_application(),
                         server_class=_ThreadingServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


def _percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return f"p50 {statistics.median(ordered):6.1f} ms   p95 {p95:6.1f} ms   (n={len(ordered)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--presses", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    setup_django(BENCH_DATABASE)
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from playwright.sync_api import sync_playwright

    from bench.labeling import _load_corpus
    from labeling.models import Label

    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    print(f"loading {args.videos:,} videos …", flush=True)
    labels, _ = _load_corpus(args.videos, args.seed)
    print(f"{labels:,} labels", flush=True)
    veteran = get_user_model().objects.get(username="bench-labeler-0")
    veteran.set_password(PASSWORD)
    veteran.save()
    veteran.groups.add(Group.objects.get_or_create(name="labelers")[0])
    before = Label.objects.filter(user=veteran).count()

    base_url, server = _serve()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            page = browser.new_page(base_url=base_url)
            login = page.goto("/accounts/login/?next=/labeling/")
            if login.status != 200:
                raise SystemExit(f"the login page answered {login.status}: {page.content()[:500]}")
            page.fill("input[name=username]", veteran.username)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit], input[type=submit]")
            page.wait_for_selector("#label-card[data-video-aid]")
            page.evaluate(_INSTRUMENT)
            saves = []
            for press in range(args.presses):
                shown = page.locator("#label-card").get_attribute("data-video-aid")
                started = time.perf_counter()
                with page.expect_response(lambda response: response.url.endswith("/labeling/answer")) as answer:
                    page.keyboard.press("1" if press % 2 else "0")
                answer.value.finished()
                saves.append((time.perf_counter() - started) * 1000)
                page.wait_for_function("shown => document.getElementById('label-card').dataset.videoAid !== shown",
                                       arg=shown)
                page.wait_for_function("document.querySelectorAll('#label-prefetch template').length >= 2")
            swaps = page.evaluate("window.__swaps")
            browser.close()
    finally:
        server.shutdown()
    written = Label.objects.filter(user=veteran).count() - before
    print(f"\n{args.videos:,} videos, {labels:,} labels, the veteran labeler, {args.presses} key presses "
          f"({written} labels written)")
    print(f"key press -> next card visible:   {_percentiles(swaps)}")
    print(f"key press -> answer saved:        {_percentiles(saves)}  (the background post's response, seen by the driver)")


if __name__ == "__main__":
    main()
