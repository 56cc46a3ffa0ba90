"""The status page in Debian's Chromium, driven by Playwright: a finished job from the emulator
shows, pause and resume work with the token and are refused without it, and it fits a phone."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from batch_poller.events.consumer import EventConsumer
from batch_poller.store import StoreError
from tests.http.conftest import TOKEN, Admin

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)"
)
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=FLAGS
        )
        yield browser
        await browser.close()


async def _finished_job(control: Any, submit: Any, supervisor: Any, records: int = 12) -> str:
    arn = await submit(records, tags={"emulator:error-rate": "0.25"})
    await control.finish(arn, "Completed")
    await supervisor.run_pass()
    return str(arn)


async def test_the_page_shows_a_finished_job_and_pauses_with_the_token(
    browser: Any, admin: Admin, control: Any, submit: Any, supervisor: Any, tmp_path: Path
) -> None:
    await _finished_job(control, submit, supervisor)
    await submit(5)  # one still running at Bedrock
    page = await browser.new_page(viewport={"width": 1200, "height": 800})
    page.on("dialog", lambda dialog: dialog.accept(TOKEN))

    await page.goto(admin.server.url + "/")
    row = page.locator("#job-rows tr", has_text="COMPLETED")
    await row.wait_for()
    cells = [await c.inner_text() for c in await row.locator("td").all()]
    await page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    if os.environ.get("BATCH_POLLER_DOCS_SCREENSHOT"):
        await page.screenshot(path=str(DOCS / "status-page.png"), full_page=True)

    assert cells[1:7] == ["COMPLETED", "no", "12", "9", "3", cells[6]]
    assert cells[6].startswith("$")
    assert cells[7] == "done"
    assert await page.locator("#state").inner_text() == "running"
    assert await page.locator("#jobs-pending").inner_text() == "1"
    assert await page.locator("#completed-today").inner_text() == "1"
    # The process that ran the pass shows among the replicas, marked as this page's own.
    replica = page.locator("#replica-rows tr", has_text="(this one)")
    assert await replica.count() == 1
    assert supervisor.owner in await replica.inner_text()
    assert supervisor.owner in await page.locator("#replica").inner_text()

    await page.click("#stop")
    await page.locator("#state", has_text="paused").wait_for()
    assert supervisor.paused
    await page.click("#start")
    await page.locator("#state", has_text="running").wait_for()
    assert not supervisor.paused


async def test_a_running_job_shows_its_progress_as_processed_of_total(
    browser: Any, admin: Admin, control: Any, submit: Any, supervisor: Any
) -> None:
    arn = await submit(40)
    for _ in range(20):  # on the emulator's clock, until Bedrock counts some of its records
        if (await control.job(arn)).get("processedRecordCount"):
            break
        await control.advance_clock(0.5)
    await supervisor.run_pass()
    processed = (await supervisor.rt.store.get_job(arn)).progress_processed
    page = await browser.new_page()

    await page.goto(admin.server.url + "/")
    row = page.locator("#job-rows tr", has_text="IN_PROGRESS")
    await row.wait_for()
    cells = [await c.inner_text() for c in await row.locator("td").all()]

    assert 0 < processed < 40
    assert cells[3] == f"{processed}/40"


async def test_the_page_counts_the_events_received(
    browser: Any, admin: Admin, control: Any, submit: Any, supervisor: Any, sqs: Any
) -> None:
    queue = (await sqs.create_queue(QueueName="page-events"))["QueueUrl"]
    await control.configure(events_queue_url=queue)
    rt = supervisor.rt
    events = rt.settings.events.model_copy(update={"sqs_queue_url": queue})
    rt.settings = rt.settings.model_copy(update={"events": events})
    arn = await submit(3)
    await control.finish(arn, "Completed")  # Bedrock's event, on the queue
    await sqs.send_message(QueueUrl=queue, MessageBody="not an event")
    consumer = EventConsumer(rt, lambda: None, sqs, wait_seconds=0)
    while await consumer.receive_once():
        pass
    supervisor.events = consumer.counts
    page = await browser.new_page()

    await page.goto(admin.server.url + "/")
    line = page.locator("#events")
    await line.wait_for()

    counts = consumer.counts  # one event for each change of the job, and the stray message
    assert counts.accepted >= 1 and counts.received == counts.accepted + 1
    expected = f"Events: {counts.received} received, {counts.accepted} accepted, 1 ignored; last"
    assert (await line.inner_text()).startswith(expected)


async def test_a_failed_job_says_why_under_its_status(
    browser: Any, admin: Admin, control: Any, submit: Any, supervisor: Any
) -> None:
    arn = await submit(3)
    await control.finish(arn, "Failed", message="The input file holds no valid record.")
    await supervisor.run_pass()
    page = await browser.new_page()

    await page.goto(admin.server.url + "/")
    status = page.locator("#job-rows tr td.status-FAILED")
    await status.wait_for()

    assert await status.locator(".reason").inner_text() == "The input file holds no valid record."
    assert await status.get_attribute("title") == "The input file holds no valid record."


async def test_the_page_shows_a_compiled_group_and_names_it_under_its_jobs(
    browser: Any, admin: Admin, control: Any, submit: Any, supervisor: Any, runtime: Any
) -> None:
    from batch_poller.tracking import track_jobs

    first, second = await submit(4), await submit(6)
    await track_jobs(runtime, [first, second], group="analysis-3", seal=True)
    for arn in (first, second):
        await control.finish(arn, "Completed")
    await supervisor.run_pass()
    page = await browser.new_page(viewport={"width": 1200, "height": 800})

    await page.goto(admin.server.url + "/")
    row = page.locator("#group-rows tr[data-group='analysis-3']")
    await row.wait_for()
    cells = [await c.inner_text() for c in await row.locator("td").all()]

    assert cells[:6] == ["analysis-3", "COMPLETED", "2", "10", "10", "0"]
    assert cells[6].startswith("$") and cells[7] != "\u2013"  # a time, not the empty dash
    named = page.locator("#job-rows tr .group", has_text="group analysis-3")
    assert await named.count() == 2


async def test_the_page_says_when_passes_fail_and_why(
    browser: Any, admin: Admin, supervisor: Any, runtime: Any
) -> None:
    page = await browser.new_page()
    await page.goto(admin.server.url + "/")
    await page.locator("#state", has_text="running").wait_for()
    hidden_while_healthy = await page.locator("#health").is_hidden()

    failure = StoreError(
        "claim jobs: OperationalError: attempt to write a readonly database", OSError(30, "ro")
    )
    supervisor.health.pass_failed(failure, runtime.clock.now())
    supervisor.health.pass_failed(failure, runtime.clock.now())
    await page.reload()
    alert = page.locator("#health", has_text="2 in a row")
    await alert.wait_for()

    assert hidden_while_healthy
    assert "attempt to write a readonly database" in await alert.inner_text()


async def test_pausing_is_refused_without_the_right_token(
    browser: Any, admin: Admin, supervisor: Any
) -> None:
    page = await browser.new_page()
    page.on("dialog", lambda dialog: dialog.accept("a wrong token"))

    await page.goto(admin.server.url + "/")
    await page.locator("#state", has_text="running").wait_for()
    await page.click("#stop")
    message = page.locator("#message", has_text="unauthorized")
    await message.wait_for()

    assert not supervisor.paused
    assert await page.locator("#state").inner_text() == "running"
    assert await page.evaluate("sessionStorage.length") == 0  # a refused token is forgotten


async def test_dismissing_the_token_prompt_changes_nothing(
    browser: Any, admin: Admin, supervisor: Any
) -> None:
    page = await browser.new_page()
    prompts: list[str] = []

    async def dismiss(dialog: Any) -> None:
        prompts.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", dismiss)
    await page.goto(admin.server.url + "/")
    await page.locator("#state", has_text="running").wait_for()
    await page.click("#stop")
    await page.locator("#stop").is_enabled()

    assert prompts and "token" in prompts[0].lower()
    assert not supervisor.paused


async def test_the_page_reads_well_on_a_phone(
    browser: Any, admin: Admin, control: Any, submit: Any, supervisor: Any, tmp_path: Path
) -> None:
    await _finished_job(control, submit, supervisor, records=4)
    page = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)

    await page.goto(admin.server.url + "/")
    await page.locator("#job-rows tr", has_text="COMPLETED").wait_for()
    await page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)

    page_width = await page.evaluate("document.documentElement.scrollWidth")
    header_shown = await page.evaluate("getComputedStyle(document.querySelector('thead')).display")
    assert page_width <= 390  # nothing runs off the side
    assert header_shown == "none"  # rows become labelled cards
