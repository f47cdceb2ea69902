"""The README's screenshot of the console's overview, taken from a running `make demo`.

Run: ``.venv/bin/python deploy/screenshot.py [--url http://127.0.0.1:19470/]
[--out docs/console.png]`` while the demo runs. Headless Chromium (/usr/bin/chromium)
through playwright; the page as a 1400 px wide browser shows it, first screen only.
"""

import argparse
import asyncio
import shutil
import sys
from pathlib import Path

from playwright.async_api import async_playwright

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
         "--disable-background-networking", "--disable-component-update"]


async def shoot(url: str, out: Path, width: int, height: int) -> int:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=FLAGS)
        try:
            page = await browser.new_page(viewport={"width": width, "height": height})
            await page.goto(url)
            await page.wait_for_selector("main h1")
            data = await page.screenshot(path=str(out), type="png")
        finally:
            await browser.close()
    return len(data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:19470/")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console.png")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=680)
    args = parser.parse_args()
    size = asyncio.run(shoot(args.url, args.out, args.width, args.height))
    print(f"{args.out}: {size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
