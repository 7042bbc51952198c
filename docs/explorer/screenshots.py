"""Screenshots of the explorer for the README: three layers, taken with Playwright and Debian's chromium.

python docs/explorer/screenshots.py   # writes docs/explorer/*.png
"""

from __future__ import annotations

import pathlib
import threading

from playwright.sync_api import sync_playwright

from tconv.tools.serve import make_server

HERE = pathlib.Path(__file__).resolve().parent
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SEED004 = (
    "framework=tensorflow&input=2x2&kernel=3&stride=2&padding=valid"
    "&x=[[-67,-77],[-117,-127]]&w=[[-1,2,-3],[4,-5,6],[-7,8,-9]]"
)
# (file, query, the section shown below the size, the step of its animation)
SHOTS = [
    ("keras-dcgan.png", "framework=keras&input=7x7&kernel=5&stride=2&padding=same", "#scatter-section", None),
    ("seed004-gather.png", SEED004, "#gather-section", 12),
    (
        "torch-dilated.png",
        "framework=torch&input=4x4&kernel=3&stride=2&dilation=2&padding=2&output-padding=1",
        "#gather-section",
        20,
    ),
]


def main() -> None:
    server = make_server(0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        for name, query, section, step in SHOTS:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"{server.url}?{query}")
            page.wait_for_selector("body[data-ready=true]")
            if step is not None:
                page.fill(f"{section} input[type=range]", str(step))
                page.dispatch_event(f"{section} input[type=range]", "input")
            # The section of interest right below the output size, and the page at its top.
            page.evaluate(f"document.querySelector('#size-section').after(document.querySelector('{section}'))")
            page.evaluate("window.scrollTo(0, 0)")
            page.wait_for_timeout(200)
            page.screenshot(path=str(HERE / name), clip={"x": 0, "y": 0, "width": 1280, "height": 1000})
            print(f"wrote {HERE / name}")
            page.close()
        browser.close()
    server.shutdown()


if __name__ == "__main__":
    main()
