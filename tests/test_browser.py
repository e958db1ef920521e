"""The web page end to end: a real `facessl serve` process and a real headless Chromium.

Chromium is Debian's (`apt-get install chromium`, done by scripts/setup.sh as root), driven
by the Python playwright package; `playwright install` is never needed.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from test_classifier import photos, shared_model

CHROMIUM = Path("/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
if not CHROMIUM.is_file():
    pytest.skip(f"no {CHROMIUM}: install Debian's chromium (scripts/setup.sh does as root)",
                allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_lfw, tmp_path_factory):
    """`facessl serve MODEL` on a free port, as a subprocess; stopped after the tests."""
    port = _free_port()
    model = shared_model(tiny_lfw, tmp_path_factory)
    process = subprocess.Popen([sys.executable, "-m", "facessl", "serve", str(model),
                                "--port", str(port)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            assert process.poll() is None, process.stderr.read()
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not start within 60 s"
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page()
        page.goto(server)
        yield page
        browser.close()


def test_the_page_lists_people_and_names_an_uploaded_photo(page, tiny_lfw):
    sync_api.expect(page.locator("#people li")).to_have_text(
        ["Ariel_Sharon", "Donald_Rumsfeld", "Gerhard_Schroeder"])
    photo = photos(tiny_lfw, "Donald_Rumsfeld", ("test",))[1]
    page.set_input_files("#file", str(photo))
    page.click("button[type=submit]")
    label = page.locator("#photo .box .name").first
    sync_api.expect(label).to_have_text("Donald_Rumsfeld", timeout=30_000)
    assert page.locator("#photo img").is_visible()
    box = page.locator("#photo .box").first.bounding_box()
    image = page.locator("#photo img").bounding_box()
    assert image["x"] < box["x"] and box["x"] + box["width"] < image["x"] + image["width"]
    # MTCNN also finds the people behind Rumsfeld in this LFW photo: one box per face found
    boxes = page.locator("#photo .box").count()
    sync_api.expect(page.locator("#status")).to_have_text(f"{boxes} face(s) found.")
    assert boxes >= 1


def test_the_page_shows_why_an_upload_was_refused(page, tmp_path):
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo")
    page.set_input_files("#file", str(notes))
    page.click("button[type=submit]")
    sync_api.expect(page.locator("#status")).to_contain_text("notes.jpg is not an image")
    sync_api.expect(page.locator("#status")).to_have_class("error")
