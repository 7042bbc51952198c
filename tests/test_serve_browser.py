"""The explorer in a real browser: Playwright driving Debian's Chromium headless against ``tconv serve``'s server
(in-process, 127.0.0.1, an ephemeral port). Skipped cleanly where Playwright or /usr/bin/chromium is missing;
``.ci/run`` installs both."""

from __future__ import annotations

import pathlib
import re
import threading
import urllib.parse

import pytest

from tconv.tools.serve import make_server

CHROMIUM = pathlib.Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SEED004_ROW = ["67", "-134", "278", "-154", "231"]

sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright (the test extra)")
if not CHROMIUM.exists():
    pytest.skip("the browser tests need Debian's chromium at /usr/bin/chromium", allow_module_level=True)
expect = sync_api.expect


@pytest.fixture(scope="module")
def server():
    srv = make_server(0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


class Page:
    """A page of the explorer with its console errors and uncaught exceptions collected."""

    def __init__(self, browser, server, query="", width=1300):
        self.page = browser.new_page(viewport={"width": width, "height": 900})
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        self.page.goto(server.url + query)
        self.page.wait_for_selector("body[data-ready=true]")
        self.settle()

    def settle(self):
        """Wait until the last change's requests have been answered and drawn."""
        self.page.wait_for_timeout(250)  # the controls' debounce
        self.page.wait_for_selector("body[data-busy=false]")

    def set(self, field, value):
        self.page.fill(f"#{field}", value)
        self.settle()

    def output_row(self, row=0):
        cells = self.page.locator("#output-grid .cell")
        count = cells.count()
        columns = int(
            self.page.evaluate(
                "getComputedStyle(document.querySelector('#output-grid .grid')).gridTemplateColumns.split(' ').length"
            )
        )
        assert count % columns == 0
        return [cells.nth(row * columns + c).inner_text() for c in range(columns)]

    def unexpected_errors(self, allowed_statuses=()):
        """Console errors other than the browser's note on a 4xx the test asked for."""
        allowed = [f"status of {status}" for status in allowed_statuses]
        return [e for e in self.errors if not any(a in e for a in allowed)]


@pytest.fixture
def page(browser, server):
    opened = Page(browser, server)
    yield opened
    opened.page.close()


def test_the_page_loads_with_every_view(page):
    p = page.page
    assert p.title() == "tconv explorer"
    expect(p.locator("#summary")).to_contain_text("7x7 → 14x14")
    expect(p.locator("#formula")).to_contain_text("(7-1)*2 + 1*(5-1) + 1 - 1 - 2 + 0 = 14")
    expect(p.locator("#warnings")).to_contain_text("checkerboard")
    for name in ("torch", "tensorflow", "keras", "onnx", "jax", "paddle"):
        expect(p.locator(f"#code-{name}")).to_be_visible()
    expect(p.locator("#code-keras")).to_contain_text("padding='same'")
    assert p.locator("#scatter-canvas .cell").count() == 17 * 17
    assert p.locator("#gather-spread .cell.zero").count() > 0 and p.locator("#gather-spread .cell.pad").count() > 0
    assert p.locator("#taps-grid .cell").count() == 14 * 14
    expect(p.locator("#matrix-check")).to_contain_text("equals the layer's output")
    expect(p.locator("#padding-help")).to_contain_text("same or valid only")
    assert page.unexpected_errors() == []


def test_changing_the_stride_updates_the_size_and_the_code(page):
    p = page.page
    page.set("stride", "1")
    expect(p.locator("#output-size-value")).to_have_text("7x7")
    expect(p.locator("#code-keras")).to_contain_text("strides=(1, 1)")
    expect(p.locator("#code-torch")).to_contain_text("stride=(1, 1)")
    page.set("stride", "3")
    expect(p.locator("#output-size-value")).to_have_text("21x21")
    expect(p.locator("#code-tensorflow")).to_contain_text("output_shape=(N, 21, 21, 1)")
    assert "stride=3" in p.url
    assert page.unexpected_errors() == []


def test_typed_seed_values_give_the_known_result(page):
    p = page.page
    p.select_option("#framework", "tensorflow")
    for field, value in (("input", "2x2"), ("kernel", "3"), ("stride", "2"), ("padding", "valid")):
        p.fill(f"#{field}", value)
    p.select_option("#x-kind", "typed")
    p.fill("#x-values", "[[-67, -77], [-117, -127]]")
    p.select_option("#w-kind", "typed")
    p.fill("#w-values", "[[-1,2,-3],[4,-5,6],[-7,8,-9]]")
    page.settle()
    expect(p.locator("#output-size-value")).to_have_text("5x5")
    assert page.output_row(0) == SEED004_ROW
    assert page.output_row(4) == ["819", "-936", "1942", "-1016", "1143"]
    # The gather's first step explains the 67: -67 times the flipped kernel's -1 (the seed's question).
    p.click("#gather-section button[data-action=first]")
    expect(p.locator("#gather-caption")).to_contain_text("-67*-1 = 67")
    # The preset gives the same.
    p.select_option("#x-kind", "ones")
    page.settle()
    assert page.output_row(0) != SEED004_ROW
    p.click("button[data-preset=seed004]")
    page.settle()
    assert page.output_row(0) == SEED004_ROW
    assert page.unexpected_errors() == []


def test_the_url_round_trips_the_state(browser, server, page):
    p = page.page
    p.select_option("#framework", "torch")
    page.set("input", "5x6")
    page.set("kernel", "3x4")
    page.set("stride", "2")
    page.set("padding", "1")
    page.set("output-padding", "1")
    page.set("groups", "2")
    p.select_option("#x-kind", "random")
    page.set("seed", "7")
    summary = p.inner_text("#summary")
    row = page.output_row(0)
    query = urllib.parse.urlsplit(p.url).query
    params = dict(urllib.parse.parse_qsl(query))
    assert params == {
        "framework": "torch",
        "input": "5x6",
        "kernel": "3x4",
        "stride": "2",
        "padding": "1",
        "output-padding": "1",
        "groups": "2",
        "x": "random",
        "seed": "7",
    }
    again = Page(browser, server, "?" + query)
    try:
        q = again.page
        for field, value in params.items():
            if field not in ("x", "seed"):
                assert q.input_value(f"#{field}") == value
        assert q.input_value("#x-kind") == "random" and q.input_value("#seed") == "7"
        assert q.inner_text("#summary") == summary and again.output_row(0) == row
        assert urllib.parse.urlsplit(q.url).query == query
        assert again.unexpected_errors() == []
    finally:
        again.page.close()


def test_a_change_marks_the_page_busy_before_its_debounced_update(page):
    """A reader waiting on data-busy never takes the old results for the new: the page is busy from the change,
    not from when the debounce timer fires (under load the timer can fire well after the 200 ms)."""
    p = page.page
    assert p.locator("#output-grid .cell").count() == 14 * 14
    p.fill("#stride", "3")
    assert p.evaluate("document.body.dataset.busy") == "true"
    p.wait_for_selector("body[data-busy=false]")
    expect(p.locator("#output-size-value")).to_have_text("21x21")
    assert p.locator("#output-grid .cell").count() == 21 * 21
    assert page.unexpected_errors() == []


def test_an_invalid_size_shows_the_message(page):
    p = page.page
    page.set("input", "7x")
    expect(p.locator("#error")).to_be_visible()
    expect(p.locator("#error")).to_contain_text("input must be sizes like 7, 7x7 or 7x7x7; received '7x'")
    assert p.get_attribute("#input", "aria-invalid") == "true"
    page.set("input", "7x7")
    expect(p.locator("#error")).to_be_hidden()
    page.set("padding", "3")  # Keras has no integer padding
    expect(p.locator("#error")).to_contain_text("Keras takes padding 'same' or 'valid'")
    page.set("padding", "same")
    page.set("input", "40x40")  # explainable, too large to draw
    expect(p.locator("#error")).to_be_hidden()
    expect(p.locator("#output-size-value")).to_have_text("80x80")
    expect(p.locator("#scatter-canvas")).to_contain_text("too large to draw")
    expect(p.locator("#matrix-grid")).to_contain_text("too large to draw")
    assert page.unexpected_errors(allowed_statuses=(400, 422)) == []


def test_the_steps_play_from_the_keyboard(page):
    p = page.page
    p.click("button[data-preset=seed004]")
    page.settle()
    first = p.locator("#scatter-section button[data-action=first]")
    first.focus()
    p.keyboard.press("Enter")
    expect(p.locator("#scatter-caption")).to_contain_text("Step 0 of 4")
    p.keyboard.press("Tab")  # to "previous"
    p.keyboard.press("Tab")  # to "play"
    p.keyboard.press("Tab")  # to "next"
    p.keyboard.press("Enter")
    expect(p.locator("#scatter-caption")).to_contain_text("Step 1 of 4: input (0, 0) = -67")
    p.keyboard.press("Tab")  # "last"
    p.keyboard.press("Tab")  # the step slider
    p.keyboard.press("End")
    expect(p.locator("#scatter-caption")).to_contain_text("Step 4 of 4")
    play = p.locator("#gather-section button[data-action=play]")
    play.focus()
    p.keyboard.press("Enter")
    expect(play).to_have_text("Pause")
    # playing moves on by itself: step 3 or any later one (the polls can fall between two steps)
    expect(p.locator("#gather-caption")).to_contain_text(re.compile(r"step ([3-9]|1\d|2[0-5]) of 25"), timeout=5000)
    p.keyboard.press("Enter")
    expect(play).to_have_text("Play")
    assert page.unexpected_errors() == []


def test_three_dimensions_and_phone_width(browser, server):
    phone = Page(browser, server, "?framework=torch&input=3x3x3&kernel=3&stride=2&padding=1&output-padding=1", 390)
    try:
        p = phone.page
        expect(p.locator("#output-size-value")).to_have_text("6x6x6")
        assert p.locator("#output-grid .slice-label").count() == 6  # one grid per depth slice
        assert p.input_value("#dims") == "3"
        expect(p.locator("#taps-caption")).to_contain_text("and 8 taps")
        # Nothing wider than the phone's screen but the grids, which scroll inside their own boxes.
        assert p.evaluate("document.documentElement.scrollWidth") <= 390
        assert phone.unexpected_errors() == []
    finally:
        p.close()
