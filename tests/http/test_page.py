"""The status page in Debian's Chromium, driven by Playwright: a finished job from the emulator
shows, pause and resume work with the token and are refused without it, a job's detail shows its
fields, errors and records page by page, the jobs filter, search and page beyond 200, actions ask
for the token (and for confirmation before deleting), the chart draws the day's work, and it fits
a phone."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from batch_poller.domain import JobStatus
from batch_poller.events.consumer import EventConsumer
from batch_poller.store import StoreError
from tests.helpers import BUCKET, create_job, make_records, put_input, read_object
from tests.http.conftest import TOKEN, Admin
from tests.http.jobs import insert_job, set_columns

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
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
DASH = "\u2013"  # between the first and the last of a page, as the page writes it


async def docs_screenshot(page: Any, name: str, *, full_page: bool = True) -> None:
    """docs/<name>, refreshed when BATCH_POLLER_DOCS_SCREENSHOT is set."""
    if os.environ.get("BATCH_POLLER_DOCS_SCREENSHOT"):
        await page.screenshot(path=str(DOCS / name), full_page=full_page)


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
    page = await browser.new_page(viewport=DESKTOP)
    page.on("dialog", lambda dialog: dialog.accept(TOKEN))

    await page.goto(admin.server.url + "/")
    row = page.locator("#job-rows tr", has_text="COMPLETED")
    await row.wait_for()
    await page.locator("#activity-chart rect.bar-records").wait_for()
    cells = [await c.inner_text() for c in await row.locator("td").all()]
    await page.screenshot(path=str(tmp_path / "page.png"), full_page=True)

    assert cells[1:7] == ["COMPLETED", "no", "12", "9", "3", cells[6]]
    assert re.fullmatch(r"\$0\.\d*[1-9]\d*", cells[6])  # cents of a cent, never $0.00
    header = page.locator("#jobs thead th").nth(2)
    assert await header.inner_text() == "Daemon will act"
    assert "by itself" in (await header.get_attribute("title") or "")
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
    arn = await _finished_job(control, submit, supervisor, records=4)
    page = await browser.new_page(viewport=PHONE, is_mobile=True)

    await page.goto(admin.server.url + "/")
    await page.locator("#job-rows tr", has_text="COMPLETED").wait_for()
    await page.locator("#activity-chart rect.bar-records").wait_for()
    await page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    page_width = await page.evaluate("document.documentElement.scrollWidth")
    header_shown = await page.evaluate("getComputedStyle(document.querySelector('thead')).display")
    chart_width = await page.evaluate(
        "document.getElementById('activity-chart').width.baseVal.value"
    )

    await page.click(f"#job-rows tr[data-job='{arn}']")
    dialog = page.locator("#detail")
    await dialog.locator("#detail-records tr[data-record]").first.wait_for()
    await page.screenshot(path=str(tmp_path / "phone-detail.png"))
    widths = await page.evaluate(
        "[document.documentElement.scrollWidth, ...(() => {"
        " const d = document.getElementById('detail'); return [d.scrollWidth, d.clientWidth, "
        " d.getBoundingClientRect().right]; })()]"
    )

    assert page_width <= 390  # nothing runs off the side
    assert header_shown == "none"  # rows become labelled cards
    assert chart_width <= 390
    document_width, detail_content, detail_box, detail_right = widths
    assert document_width <= 390 and detail_right <= 390
    assert detail_content <= detail_box  # the detail does not scroll sideways either


async def test_the_next_pass_says_in_how_long_or_due_now(
    browser: Any, admin: Admin, supervisor: Any
) -> None:
    # The page counts from the browser's clock, so the times are set from the real one.
    supervisor.next_pass_at = datetime.now(UTC) + timedelta(minutes=10)
    page = await browser.new_page()
    await page.goto(admin.server.url + "/")
    ahead = page.locator("#next-pass", has_text="in ")
    await ahead.wait_for()
    ahead_text = await ahead.inner_text()

    supervisor.next_pass_at = datetime.now(UTC) - timedelta(seconds=30)
    await page.reload()
    due = page.locator("#next-pass", has_text="due now")
    await due.wait_for()

    assert re.fullmatch(r"in (9|10) min", ahead_text)
    assert "ago" not in await due.inner_text()


async def test_a_failed_job_shows_bedrocks_message_and_its_last_error(
    browser: Any, admin: Admin, control: Any, submit: Any, supervisor: Any, runtime: Any
) -> None:
    arn = await submit(3)
    await control.finish(arn, "Failed", message="The input file holds no valid record.")
    await supervisor.run_pass()
    await set_columns(runtime.store, arn, last_error="AccessDenied reading the output folder")
    page = await browser.new_page()

    await page.goto(admin.server.url + "/")
    status = page.locator("#job-rows tr td.status-FAILED")
    await status.wait_for()

    bedrock = await status.locator(".reason").inner_text()
    ours = await status.locator(".last-error").inner_text()
    assert bedrock == "Bedrock: The input file holds no valid record."
    assert ours == "Last error: AccessDenied reading the output folder"
    assert await status.get_attribute("title") == f"{bedrock}\n{ours}"


async def test_the_detail_view_shows_fields_timeline_error_counts_and_pages_the_records(
    browser: Any, admin: Admin, control: Any, submit: Any, supervisor: Any, runtime: Any,
    tmp_path: Path,
) -> None:  # fmt: skip
    arn = await _finished_job(control, submit, supervisor)
    job = await runtime.store.get_job(arn)
    page = await browser.new_page(viewport=DESKTOP)
    await page.goto(admin.server.url + "/")
    row = page.locator(f"#job-rows tr[data-job='{arn}']")
    await row.wait_for()

    await row.focus()
    await page.keyboard.press("Enter")  # a row opens with the keyboard as with a click
    dialog = page.locator("#detail")
    await dialog.locator("#detail-errors tr[data-code='400']").wait_for()
    await dialog.locator("#detail-records tr[data-record]").first.wait_for()
    await page.screenshot(path=str(tmp_path / "detail.png"))

    def field(name: str) -> Any:
        return dialog.locator(f"#detail-fields [data-field='{name}'] dd")

    assert await dialog.get_attribute("open") is not None
    assert await page.locator("#detail-title").inner_text() == job.job_name
    assert await field("records").inner_text() == "12 (9 ok, 3 errors)"
    tokens = f"{job.input_tokens:,} in, {job.output_tokens:,} out"
    assert await field("tokens").inner_text() == tokens
    assert await field("bytes_freed").inner_text() == _bytes(job.bytes_freed)
    assert await field("cleanup").inner_text() == "done"
    steps = dialog.locator("#detail-timeline li")
    assert await steps.count() == 4
    assert [await s.get_attribute("class") for s in await steps.all()] == ["done"] * 4
    assert "Results stored" in await steps.nth(2).inner_text()
    error_rows = dialog.locator("#detail-errors tr")
    assert [await c.inner_text() for c in await error_rows.locator("td").all()] == ["400", "3"]
    assert await dialog.locator("#detail-first-errors tr").count() == 3

    records = dialog.locator("#detail-records tr[data-record]")
    first_page = [await r.get_attribute("data-record") for r in await records.all()]
    await page.click("#records-next")
    await dialog.locator("#records-range", has_text=f"records 11{DASH}12").wait_for()
    second_page = [await r.get_attribute("data-record") for r in await records.all()]
    next_disabled = await page.locator("#records-next").is_disabled()
    await page.click("#records-prev")
    await dialog.locator("#records-range", has_text=f"records 1{DASH}10").wait_for()
    again = [await r.get_attribute("data-record") for r in await records.all()]

    assert len(first_page) == 10 and len(second_page) == 2 and next_disabled
    assert sorted(set(first_page + second_page)) == first_page + second_page
    assert again == first_page

    await page.keyboard.press("Escape")
    await dialog.wait_for(state="hidden")
    # The keyboard's focus goes back to the row that opened it.
    await page.wait_for_function("(arn) => document.activeElement.dataset.job === arn", arg=arn)


def _bytes(n: int) -> str:
    value, units = float(n), ["kB", "MB", "GB", "TB"]
    if n < 1000:
        return f"{n} bytes"
    unit = -1
    while value >= 1000 and unit < len(units) - 1:
        value /= 1000
        unit += 1
    return f"{value:.1f} {units[unit]} ({n:,} bytes)"


async def test_the_jobs_filter_search_and_page_beyond_200_with_the_total(
    browser: Any, admin: Admin, runtime: Any
) -> None:
    now = runtime.clock.now()
    for n in range(1, 231):
        failed = n % 40 == 0
        await insert_job(
            runtime.store, n, now, status=JobStatus.FAILED if failed else JobStatus.IN_PROGRESS
        )
    page = await browser.new_page(viewport=DESKTOP)
    await page.goto(admin.server.url + "/")
    rows = page.locator("#job-rows tr[data-job]")
    await page.locator("#jobs-range", has_text=f"1{DASH}50 of 230").wait_for()

    first_rows = await rows.count()
    total = await page.locator("#job-total").inner_text()
    for first in (51, 101, 151, 201):
        await page.click("#jobs-next")
        shown = f"{first}{DASH}{min(first + 49, 230)} of 230"
        await page.locator("#jobs-range", has_text=shown).wait_for()
    last_rows = [await r.locator("td").first.inner_text() for r in await rows.all()]
    last_next_disabled = await page.locator("#jobs-next").is_disabled()

    await page.select_option("#filter-status", "FAILED")
    await page.locator("#job-total", has_text="5 jobs match").wait_for()
    failed_rows = [await r.locator("td").first.inner_text() for r in await rows.all()]
    await page.fill("#filter-q", "stored-12")  # with FAILED: stored-120 only
    await page.locator("#job-total", has_text="1 job matches").wait_for()
    await page.select_option("#filter-status", "")
    await page.locator("#job-total", has_text="11 jobs match").wait_for()
    found = [await r.locator("td").first.inner_text() for r in await rows.all()]
    await page.fill("#filter-q", "%")
    await page.locator("#job-rows", has_text="No job matches.").wait_for()

    assert first_rows == 50 and total == "230 jobs"
    assert last_rows == [f"stored-{n}" for n in range(201, 231)] and last_next_disabled
    assert failed_rows == [f"stored-{n}" for n in (40, 80, 120, 160, 200)]
    assert found == ["stored-12", *(f"stored-{n}" for n in range(120, 130))]


async def test_costs_keep_their_significant_digits(
    browser: Any, admin: Admin, runtime: Any
) -> None:
    now = runtime.clock.now()
    costs = {1: "0.00004", 2: "12.3456", 3: "0", 4: "1234.5678", 5: "0.1"}
    for n, cost in costs.items():
        await insert_job(runtime.store, n, now, cost=Decimal(cost))
    page = await browser.new_page()
    await page.goto(admin.server.url + "/")
    await page.locator("#jobs-range", has_text=f"1{DASH}5 of 5").wait_for()

    shown = [
        await page.locator("#job-rows tr").nth(n - 1).locator("td").nth(6).inner_text()
        for n in costs
    ]

    assert shown == ["$0.00004", "$12.346", "$0.00", "$1234.57", "$0.10"]


async def test_cleanup_from_the_detail_asks_first_then_uses_the_token(
    browser: Any, admin: Admin, control: Any, submit: Any, supervisor: Any, runtime: Any
) -> None:
    arn = await submit(2)
    await control.finish(arn, "Completed")
    cleanup = runtime.settings.cleanup.model_copy(update={"enabled": False})
    runtime.settings = runtime.settings.model_copy(update={"cleanup": cleanup})
    await supervisor.run_pass()
    page = await browser.new_page(viewport=DESKTOP)
    seen: list[str] = []
    answers = iter([False, True])

    async def answer(dialog: Any) -> None:
        seen.append(dialog.type)
        if dialog.type == "prompt":
            await dialog.accept(TOKEN)
        elif next(answers):
            await dialog.accept()
        else:
            await dialog.dismiss()

    page.on("dialog", answer)
    await page.goto(admin.server.url + "/")
    await page.click(f"#job-rows tr[data-job='{arn}']")
    button = page.locator("#detail-cleanup")
    await page.locator("#detail-fields [data-field='cleanup'] dd", has_text="pending").wait_for()

    await button.click()
    await page.locator("#detail-message", has_text="Nothing was deleted.").wait_for()
    kept = await runtime.store.get_job(arn)
    await button.click()
    await page.locator("#detail-message", has_text="Its S3 folders are deleted.").wait_for()
    await page.locator("#detail-fields [data-field='cleanup'] dd", has_text="done").wait_for()
    cleaned = await runtime.store.get_job(arn)

    assert seen == ["confirm", "confirm", "prompt"]
    assert kept.cleanup_completed_at is None
    assert cleaned.cleanup_completed_at is not None and cleaned.bytes_freed > 0
    assert await button.is_hidden()
    freed = await page.locator("#detail-fields [data-field='bytes_freed'] dd").inner_text()
    assert freed.endswith(f"({cleaned.bytes_freed:,} bytes)")


async def test_a_failed_fetch_is_retried_from_the_detail_view(
    browser: Any, admin: Admin, control: Any, submit: Any, supervisor: Any, s3: Any
) -> None:
    arn = await submit(4)
    await control.finish(arn, "Completed")
    key = f"out/{arn.rsplit('/', 1)[1]}/manifest.json.out"
    manifest = await read_object(s3, key)
    await s3.delete_object(Bucket=BUCKET, Key=key)
    await supervisor.run_pass()
    page = await browser.new_page()
    page.on("dialog", lambda dialog: dialog.accept(TOKEN))
    await page.goto(admin.server.url + "/")
    await page.click(f"#job-rows tr[data-job='{arn}']")
    retry = page.locator("#detail-retry")
    await retry.wait_for()
    reason = await page.locator("#detail-reasons").inner_text()

    await s3.put_object(Bucket=BUCKET, Key=key, Body=manifest)
    await retry.click()
    await page.locator("#detail-message", has_text="The results are stored.").wait_for()
    await page.locator("#detail-status", has_text="COMPLETED").wait_for()

    assert "no manifest" in reason
    assert await retry.is_hidden()
    assert await page.locator("#detail-fields [data-field='records'] dd").inner_text() == (
        "4 (4 ok, 0 errors)"
    )


async def test_a_job_is_tracked_by_its_arn_and_a_pass_runs_from_the_page(
    browser: Any, admin: Admin, control: Any, bedrock: Any, s3: Any, supervisor: Any
) -> None:
    uri = await put_input(s3, "page/input.jsonl", make_records(3))
    arn = await create_job(bedrock, uri, name="from-the-page")
    page = await browser.new_page()
    page.on("dialog", lambda dialog: dialog.accept(TOKEN))
    await page.goto(admin.server.url + "/")
    await page.locator("#state", has_text="running").wait_for()

    await page.click("#track summary")
    await page.fill("#track-arn", "arn:aws:s3:::bucket")
    await page.click("#track-form button[type=submit]")
    refused = page.locator("#track-message", has_text="not a Bedrock batch job ARN")
    await refused.wait_for()
    await page.fill("#track-arn", arn)
    await page.fill("#track-prefix", f"s3://{BUCKET}/page/")
    await page.click("#track-form button[type=submit]")
    await page.locator("#track-message", has_text="Now tracking from-the-page.").wait_for()
    await page.locator(f"#job-rows tr[data-job='{arn}']").wait_for()
    await control.finish(arn, "Completed")
    await page.click("#process")
    done = page.locator("#message", has_text="Pass done")
    await done.wait_for()
    await page.locator(f"#job-rows tr[data-job='{arn}'] td.status-COMPLETED").wait_for()

    assert (await done.inner_text()).startswith("Pass done: 1 job worked on (")
    assert "1 fetched" in await done.inner_text()
    assert supervisor.passes == 1


async def test_the_chart_has_a_bar_for_the_hour_with_stored_records(
    browser: Any, admin: Admin, control: Any, submit: Any, supervisor: Any, runtime: Any
) -> None:
    await _finished_job(control, submit, supervisor)  # stored at 12:00 on the daemon's clock
    now = runtime.clock.now()
    await insert_job(
        runtime.store, 7, now, status=JobStatus.FAILED, completed_at=now - timedelta(hours=2)
    )
    page = await browser.new_page(viewport=DESKTOP, timezone_id="UTC")
    await page.goto(admin.server.url + "/")
    chart = page.locator("#activity-chart")
    await chart.locator("rect.bar-records").wait_for()

    records = chart.locator("rect.bar-records")
    jobs = chart.locator("rect.bar-jobs")
    summary = await page.locator("#chart-summary").inner_text()

    assert await records.count() == 1
    assert await records.get_attribute("data-start") == "2026-01-15T12:00:00+00:00"
    assert await records.get_attribute("data-count") == "12"
    assert await records.locator("title").text_content() == "12:00: 12 records stored"
    assert await jobs.count() >= 1 and await chart.locator("rect.bar-failed").count() == 1
    assert await chart.get_attribute("role") == "img"
    assert summary.startswith("In the last 24 hours: 12 records stored,")


async def test_a_days_work_on_the_page_for_the_docs(
    browser: Any, admin: Admin, control: Any, submit: Any, supervisor: Any, runtime: Any,
    tmp_path: Path,
) -> None:  # fmt: skip
    """The screenshots in docs/ (with BATCH_POLLER_DOCS_SCREENSHOT set): jobs from the emulator
    and a day of earlier ones, the daemon's clock on the browser's."""
    runtime.clock.current = datetime.now(UTC).replace(microsecond=0)
    now = runtime.clock.now()
    for n, hours_ago in enumerate((2, 3, 3, 5, 8, 9, 13, 17, 21), start=1):
        at = now.replace(minute=n * 5) - timedelta(hours=hours_ago)
        records = 40 * n
        await insert_job(
            runtime.store, 1000 + n, now, name=f"daily-report-{n}", status=JobStatus.COMPLETED,
            submitted_at=at - timedelta(minutes=50), completed_at=at - timedelta(minutes=3),
            results_fetched_at=at, cleanup_completed_at=at, total_records=records,
            success_records=records - n % 3, error_records=n % 3, cost=Decimal("0.00061") * n,
            input_tokens=300 * records, output_tokens=420 * records, bytes_freed=9100 * records,
            last_checked_at=at,
        )  # fmt: skip
    nightly = await submit(24, tags={"emulator:error-rate": "0.2"})
    for finished in (nightly, await submit(60)):
        await control.finish(finished, "Completed")
    failed = await submit(5)
    await control.finish(failed, "Failed", message="The input file holds no valid record.")
    await supervisor.run_pass()
    running = await submit(80)
    for _ in range(20):  # on the emulator's clock, until Bedrock counts some of its records
        if (await control.job(running)).get("processedRecordCount"):
            break
        await control.advance_clock(0.5)
    await supervisor.run_pass()
    supervisor.next_pass_at = datetime.now(UTC) + timedelta(seconds=45)

    page = await browser.new_page(viewport=DESKTOP)
    await page.goto(admin.server.url + "/")
    await page.locator("#job-rows tr", has_text="IN_PROGRESS").wait_for()
    await page.locator("#activity-chart rect.bar-records").first.wait_for()
    await page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    await docs_screenshot(page, "status-page.png")
    bars = await page.locator("#activity-chart rect.bar-records").count()

    await page.click(f"#job-rows tr[data-job='{nightly}']")
    await page.locator("#detail-records tr[data-record]").first.wait_for()
    await page.locator("#detail-errors tr[data-code]").first.wait_for()
    await page.set_viewport_size({**DESKTOP, "height": 1700})  # the whole detail in view
    await page.screenshot(path=str(tmp_path / "detail.png"))
    await docs_screenshot(page, "status-page-detail.png", full_page=False)

    phone = await browser.new_page(viewport=PHONE, is_mobile=True)
    await phone.goto(admin.server.url + "/")
    await phone.locator("#job-rows tr", has_text="IN_PROGRESS").wait_for()
    await phone.locator("#activity-chart rect.bar-records").first.wait_for()
    await phone.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
    await docs_screenshot(phone, "status-page-phone.png")

    assert bars == 9  # the hours with stored records: two jobs share one; this one
    assert await phone.evaluate("document.documentElement.scrollWidth") <= 390
