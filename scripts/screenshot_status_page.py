"""Takes docs/status-page.png: runs `batch-poller demo --serve`, opens the page in Debian's
Chromium, saves a desktop and a phone screenshot, and stops the demo. `make screenshot`."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from pathlib import Path

from playwright.async_api import async_playwright

DOCS = Path(__file__).resolve().parents[1] / "docs"
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def main() -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "batch_poller", "demo", "--serve"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert demo.stdout is not None
    url = None
    for line in demo.stdout:
        found = re.search(r"Status page: (\S+)", line)
        url = found.group(1) if found else url
        if line.startswith("Serving"):
            break
    try:
        assert url, "the demo printed no status page address"
        asyncio.run(screenshots(url))
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(30)


async def screenshots(url: str) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=FLAGS
        )
        for name, viewport in (
            ("status-page.png", {"width": 1200, "height": 760}),
            ("status-page-phone.png", {"width": 390, "height": 844}),
        ):
            page = await browser.new_page(viewport=viewport)
            await page.goto(url)
            await page.locator("#job-rows tr", has_text="COMPLETED").first.wait_for()
            await page.screenshot(path=str(DOCS / name), full_page=True)
            print(f"wrote docs/{name}")
        await browser.close()


if __name__ == "__main__":
    main()
