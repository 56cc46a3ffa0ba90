// The status page: reads the API every few seconds. Actions (pause and resume, a pass now,
// retry, clean up, track) send the admin token, asked for once and kept for this browser
// session only; deleting a job's S3 folders asks for confirmation first.
"use strict";

const REFRESH_MS = 5000;
const ACTIVITY_MS = 60000;
const TOKEN_KEY = "batch-poller-admin-token";
const JOBS_PER_PAGE = 50;
const RECORDS_PER_PAGE = 10;
const FIRST_ERRORS = 5;
const SVG = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);
const NUMBER = new Intl.NumberFormat("en-US");

// What the jobs table shows: a status, a search, and where in the list.
const listing = { status: "", q: "", offset: 0, total: 0, seq: 0 };
// The job in the detail view, and its records' cursors: cursors[i] reads page i.
const detail = { job: null, cursors: [""], page: 0, seq: 0 };
let activity = null;
let activityReadAt = 0;

function span(seconds) {
  const size = Math.abs(seconds);
  return size < 90 ? `${size} s` :
    size < 5400 ? `${Math.round(size / 60)} min` :
    size < 172800 ? `${Math.round(size / 3600)} h` :
    `${Math.round(size / 86400)} days`;
}

function when(iso) {
  if (!iso) return "–";
  const seconds = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  return seconds >= 0 ? `${span(seconds)} ago` : `in ${span(seconds)}`;
}

// The next pass: "in 12 s" while it is ahead, "due now" once its time has come.
function nextPass(iso) {
  if (!iso) return "–";
  const seconds = Math.round((new Date(iso).getTime() - Date.now()) / 1000);
  return seconds > 0 ? `in ${span(seconds)}` : "due now";
}

// A moment in full, in the browser's time zone, and how long ago.
function moment(iso) {
  if (!iso) return null;
  const at = new Date(iso);
  return `${at.toLocaleString([], { dateStyle: "medium", timeStyle: "medium" })} (${when(iso)})`;
}

function show(message, ok, id = "message") {
  const box = $(id);
  box.textContent = message;
  box.className = ok ? "message ok" : "message";
  box.hidden = !message;
}

async function getJSON(path) {
  const response = await fetch(path, { headers: authHeaders() });
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || response.statusText);
  return body;
}

// Text written only when it changes, so that a live region is not read out at every refresh.
function setText(id, text) {
  const element = $(id);
  if (element.textContent !== text) element.textContent = text;
}

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function jobPath(job, rest = "") {
  return `/api/batch/jobs/${encodeURIComponent(job.batch_job_arn)}${rest}`;
}

// -- numbers -----------------------------------------------------------------------------------

function count(n) {
  return n === null || n === undefined ? null : NUMBER.format(n);
}

// Up to five significant digits, at least two decimals, so that a small cost never shows as
// $0.00: 0.00004 is "$0.00004", 12.3456 is "$12.346", 1234.5678 is "$1234.57".
function money(cost) {
  if (cost === null || cost === undefined) return null;
  const value = Number(cost);
  if (value === 0) return "$0.00";
  const whole = Math.floor(Math.log10(Math.abs(value))) + 1;
  const decimals = Math.min(8, Math.max(2, 5 - whole));
  let text = value.toFixed(decimals);
  if (Number(text) === 0) return value > 0 ? "< $0.00000001" : "> -$0.00000001";
  text = text.replace(/(\.\d\d\d*?)0+$/, "$1");
  return text.startsWith("-") ? `-$${text.slice(1)}` : `$${text}`;
}

function plural(n, word) {
  return `${count(n ?? 0)} ${n === 1 ? word : `${word}s`}`;
}

function bytes(n) {
  if (n === null || n === undefined) return null;
  if (n < 1000) return `${n} bytes`;
  const units = ["kB", "MB", "GB", "TB"];
  let value = n;
  let unit = -1;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]} (${NUMBER.format(n)} bytes)`;
}

// -- the poller --------------------------------------------------------------------------------

function renderStatus(status) {
  $("version").textContent = `v${status.version}`;
  const state = $("state");
  state.textContent = status.state;
  state.dataset.state = status.state;
  $("jobs-pending").textContent = status.jobs_pending;
  $("completed-today").textContent = status.completed_today;
  $("failed-today").textContent = status.failed_today;
  $("cleanups-pending").textContent = status.cleanups_pending;
  $("last-pass").textContent = when(status.last_pass_at);
  $("next-pass").textContent = status.state === "running" ? nextPass(status.next_pass_at) : "paused";
  $("stop").disabled = status.state !== "running";
  $("start").disabled = status.state !== "paused";
  const health = $("health");
  health.hidden = status.health !== "failing";
  health.textContent = health.hidden ? "" :
    `Passes are failing: ${status.failed_passes} in a row, since ${when(status.failing_since)}. ` +
    `Last error: ${status.last_error}`;
  renderEvents(status.events);
}

// The event consumer, when [events] sqs_queue_url is set: what it received, and whether it can.
function renderEvents(events) {
  const line = $("events");
  line.hidden = events === null;
  if (events === null) return;
  const ignored = Object.values(events.ignored).reduce((sum, n) => sum + n, 0);
  line.textContent = events.state === "failing" ?
    `Events: receiving fails since ${when(events.failing_since)}: ${events.last_error}` :
    `Events: ${events.received} received, ${events.accepted} accepted, ${ignored} ignored; ` +
    `last ${when(events.last_event_at)}`;
  line.setAttribute("role", events.state === "failing" ? "alert" : "status");
}

function cell(text, label, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "–" : String(text);
  td.dataset.label = label;
  if (className) td.className = className;
  return td;
}

// A table's one row when it has nothing to show, saying why.
function emptyRow(text, columns) {
  const tr = document.createElement("tr");
  tr.append(cell(text, "", "muted"));
  tr.firstChild.colSpan = columns;
  return tr;
}

// Every process sharing the database, this one marked: which of them holds which jobs.
function renderReplicas(status) {
  $("replica").textContent = `this page: ${status.replica}`;
  const rows = $("replica-rows");
  rows.replaceChildren();
  for (const replica of status.replicas) {
    const tr = document.createElement("tr");
    tr.dataset.replica = replica.owner;
    const name = replica.owner === status.replica ? `${replica.owner} (this one)` : replica.owner;
    tr.append(
      cell(name, "Replica"),
      cell(replica.role, "Role"),
      cell(when(replica.last_pass_at), "Last pass"),
      cell(when(replica.seen_at), "Seen"),
      cell(replica.jobs.length, "Jobs held", "num"),
    );
    rows.append(tr);
  }
  if (status.replicas.length === 0) {
    rows.append(emptyRow("No pass has run yet.", 5));
  }
}

// -- jobs --------------------------------------------------------------------------------------

// Why a job failed: a FAILED job has Bedrock's message and may have the daemon's last error
// too (both shown, named, when they differ); otherwise the one reason there is.
function reasons(job) {
  if (job.status === "FAILED" && job.message && job.last_error && job.message !== job.last_error) {
    return [
      { className: "reason", text: `Bedrock: ${job.message}` },
      { className: "last-error", text: `Last error: ${job.last_error}` },
    ];
  }
  return job.reason ? [{ className: "reason", text: job.reason }] : [];
}

function reasonLines(job) {
  return reasons(job).map((why) => {
    const line = document.createElement("div");
    line.className = why.className;
    line.textContent = why.text;
    return line;
  });
}

function statusCell(job) {
  const td = cell(job.status, "Status", `status status-${job.status}`);
  const lines = reasonLines(job);
  if (lines.length) {
    td.title = reasons(job).map((why) => why.text).join("\n");
    td.append(...lines);
  }
  return td;
}

// A job of a group names it under the job's own name.
function jobCell(job) {
  const td = cell(job.job_name || job.job_id, "Job");
  if (job.group_name) {
    const group = document.createElement("div");
    group.className = "muted group";
    group.textContent = `group ${job.group_name}`;
    td.append(group);
  }
  return td;
}

function renderJobs(page) {
  const rows = $("job-rows");
  const focused = document.activeElement && document.activeElement.closest ?
    document.activeElement.closest("#job-rows tr[data-job]") : null;
  rows.replaceChildren();
  listing.total = page.total;
  const filtered = listing.status !== "" || listing.q !== "";
  setText("job-total", filtered ?
    `${count(page.total)} ${page.total === 1 ? "job matches" : "jobs match"}` :
    `${count(page.total)} ${page.total === 1 ? "job" : "jobs"}`);
  const first = page.jobs.length ? page.offset + 1 : 0;
  setText("jobs-range", page.total ?
    `${count(first)}–${count(page.offset + page.jobs.length)} of ${count(page.total)}` : "");
  $("jobs-prev").disabled = page.offset === 0;
  $("jobs-next").disabled = page.offset + page.jobs.length >= page.total;
  if (page.jobs.length === 0) {
    rows.append(emptyRow(filtered ? "No job matches." : "No tracked jobs yet.", 9));
    return;
  }
  for (const job of page.jobs) {
    const tr = document.createElement("tr");
    tr.dataset.job = job.batch_job_arn;
    tr.tabIndex = 0;
    tr.className = "selectable";
    tr.title = "Show the job's details";
    tr.append(
      jobCell(job),
      statusCell(job),
      cell(job.auto_processing ? "yes" : "no", "Daemon will act"),
      cell(records(job), "Records", "num"),
      cell(job.success_records, "OK", "num"),
      cell(job.error_records, "Errors", "num"),
      cell(money(job.cost), "Cost", "num"),
      cell(job.cleanup, "Cleanup", `cleanup-${job.cleanup}`),
      cell(when(job.last_checked_at), "Last checked"),
    );
    tr.addEventListener("click", () => openDetail(job));
    tr.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        openDetail(job);
      }
    });
    rows.append(tr);
  }
  // A refresh keeps the row that had the keyboard's focus focused.
  if (focused) {
    const again = [...rows.children].find((tr) => tr.dataset.job === focused.dataset.job);
    if (again) again.focus();
  }
}

// Stored records, or Bedrock's progress while the job runs ("120/250").
function records(job) {
  if (job.total_records !== null) return job.total_records;
  if (job.progress_total === null) return null;
  return `${job.progress_processed ?? "?"}/${job.progress_total}`;
}

async function loadJobs() {
  const seq = ++listing.seq;
  const query = new URLSearchParams({ limit: JOBS_PER_PAGE, offset: listing.offset });
  if (listing.status) query.set("status", listing.status);
  if (listing.q) query.set("q", listing.q);
  const page = await getJSON(`/api/batch/jobs?${query}`);
  if (seq !== listing.seq) return; // a newer filter or page was asked for meanwhile
  if (page.jobs.length === 0 && page.total > 0 && listing.offset > 0) {
    // Fewer jobs than before: the last page there is.
    listing.offset = Math.floor((page.total - 1) / JOBS_PER_PAGE) * JOBS_PER_PAGE;
    await loadJobs();
    return;
  }
  renderJobs(page);
}

function reloadJobs() {
  loadJobs().catch((error) => show(`Could not read the jobs: ${error.message}`, false));
}

let searchTimer = null;

function filterChanged() {
  listing.status = $("filter-status").value;
  listing.q = $("filter-q").value.trim();
  listing.offset = 0;
  reloadJobs();
}

// -- groups ------------------------------------------------------------------------------------

// The application's units of work: a group is compiled once all its jobs have settled.
function renderGroups(groups) {
  const rows = $("group-rows");
  rows.replaceChildren();
  if (groups.length === 0) {
    rows.append(emptyRow("No groups yet: track jobs with --group.", 8));
    return;
  }
  for (const group of groups) {
    const tr = document.createElement("tr");
    tr.dataset.group = group.name;
    tr.append(
      cell(group.name, "Group"),
      cell(group.status, "Status", `status status-${group.status}`),
      cell(group.jobs, "Jobs", "num"),
      cell(group.records.total, "Records", "num"),
      cell(group.records.ok, "OK", "num"),
      cell(group.records.error, "Errors", "num"),
      cell(money(group.cost), "Cost", "num"),
      cell(when(group.compiled_at), "Compiled"),
    );
    rows.append(tr);
  }
}

// -- the chart ---------------------------------------------------------------------------------

function svg(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

function hourLabel(iso) {
  const at = new Date(iso);
  return `${String(at.getHours()).padStart(2, "0")}:${String(at.getMinutes()).padStart(2, "0")}`;
}

// Two rows of bars over the same hours, drawn at the width the page has: records stored
// above, jobs finished below (the failed part of each bar in red).
function renderChart(data) {
  const box = $("chart");
  const width = Math.max(280, Math.floor(box.clientWidth || 600));
  const left = 44;
  const panel = 64;
  const gap = 26;
  const top = 8;
  const height = top + panel * 2 + gap + 24;
  const hours = data.buckets.length;
  const step = (width - left - 4) / hours;
  const barWidth = Math.max(2, step * 0.72);
  const records = data.buckets.map((b) => b.records_stored);
  const jobs = data.buckets.map((b) => b.jobs_finished);
  const sumRecords = records.reduce((a, b) => a + b, 0);
  const sumJobs = jobs.reduce((a, b) => a + b, 0);
  const sumFailed = data.buckets.reduce((a, b) => a + b.jobs_failed, 0);
  const summary = `In the last ${hours} hours: ${plural(sumRecords, "record")} stored, ` +
    `${plural(sumJobs, "job")} finished (${count(sumFailed)} failed).`;

  const chart = svg("svg", {
    width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-labelledby": "chart-title chart-desc", id: "activity-chart",
  });
  chart.append(
    svg("title", { id: "chart-title" }, `Records stored and jobs finished per hour`),
    svg("desc", { id: "chart-desc" }, summary),
  );
  const rows = [
    { name: "records", values: records, y: top, label: "records" },
    { name: "jobs", values: jobs, y: top + panel + gap, label: "jobs" },
  ];
  for (const row of rows) {
    const most = Math.max(...row.values, 0);
    const base = row.y + panel;
    chart.append(
      svg("line", { x1: left, x2: width - 2, y1: base, y2: base, class: "axis" }),
      svg("text", { x: left - 6, y: row.y + 10, class: "tick", "text-anchor": "end" }, count(most)),
      svg("text", { x: left - 6, y: base, class: "tick", "text-anchor": "end" }, "0"),
      svg("text", { x: left, y: row.y + 10, class: "row-name" }, row.label),
    );
    data.buckets.forEach((bucket, i) => {
      const value = row.values[i];
      if (!value) return;
      const x = left + i * step + (step - barWidth) / 2;
      const h = Math.max(2, (value / most) * (panel - 14));
      const bar = svg("rect", {
        x: x.toFixed(1), y: (base - h).toFixed(1), width: barWidth.toFixed(1), height: h.toFixed(1),
        class: `bar bar-${row.name}`, "data-start": bucket.start, "data-count": value,
      });
      const what = row.name === "records" ? `${count(value)} records stored` :
        `${count(value)} jobs finished, ${count(bucket.jobs_failed)} failed`;
      bar.append(svg("title", {}, `${hourLabel(bucket.start)}: ${what}`));
      chart.append(bar);
      if (row.name === "jobs" && bucket.jobs_failed) {
        const hf = (bucket.jobs_failed / value) * h;
        chart.append(svg("rect", {
          x: x.toFixed(1), y: (base - hf).toFixed(1), width: barWidth.toFixed(1),
          height: hf.toFixed(1), class: "bar bar-failed", "aria-hidden": "true",
        }));
      }
    });
  }
  // An hour under the axis every few hours, as many as fit.
  const every = step * 3 >= 44 ? 3 : step * 6 >= 44 ? 6 : 12;
  data.buckets.forEach((bucket, i) => {
    if ((hours - 1 - i) % every !== 0) return;
    const x = left + i * step + step / 2;
    const last = x + 18 > width;  // the current hour's label ends at the edge, uncut
    chart.append(svg("text", {
      x: (last ? width - 2 : x).toFixed(1), y: height - 6, class: "tick",
      "text-anchor": last ? "end" : "middle",
    }, hourLabel(bucket.start)));
  });
  box.replaceChildren(chart);
  const busiest = data.buckets.reduce((a, b) => (b.records_stored > a.records_stored ? b : a));
  $("chart-summary").textContent = summary + (busiest.records_stored ?
    ` Most records in the hour from ${hourLabel(busiest.start)}: ${count(busiest.records_stored)}.` : "");
}

async function loadActivity() {
  activity = await getJSON("/api/batch/activity?hours=24");
  activityReadAt = Date.now();
  renderChart(activity);
}

// -- the job's detail --------------------------------------------------------------------------

const TIMELINE = [
  ["submitted_at", "Submitted"],
  ["completed_at", "Ended at Bedrock"],
  ["results_fetched_at", "Results stored"],
  ["cleanup_completed_at", "S3 folders cleaned up"],
];

function field(list, name, label, value, title) {
  const div = document.createElement("div");
  div.dataset.field = name;
  const dt = document.createElement("dt");
  dt.textContent = label;
  const dd = document.createElement("dd");
  dd.textContent = value === null || value === undefined || value === "" ? "–" : String(value);
  if (title) dd.title = title;
  div.append(dt, dd);
  list.append(div);
}

function renderDetail(job) {
  $("detail-title").textContent = job.job_name || job.job_id;
  $("detail-arn").textContent = job.batch_job_arn;
  const status = $("detail-status");
  status.textContent = job.bedrock_status ?
    `${job.status} (Bedrock: ${job.bedrock_status})` : job.status;
  status.className = `status status-${job.status}`;
  $("detail-reasons").replaceChildren(...reasonLines(job));

  const timeline = $("detail-timeline");
  timeline.replaceChildren();
  for (const [key, label] of TIMELINE) {
    const li = document.createElement("li");
    li.dataset.step = key;
    li.className = job[key] ? "done" : "pending";
    const name = document.createElement("span");
    name.className = "step";
    name.textContent = label;
    const at = document.createElement(job[key] ? "time" : "span");
    at.className = "muted";
    if (job[key]) at.dateTime = job[key];
    at.textContent = job[key] ? moment(job[key]) : "not yet";
    li.append(name, at);
    timeline.append(li);
  }

  const fields = $("detail-fields");
  fields.replaceChildren();
  const recordsText = job.total_records !== null ?
    `${count(job.total_records)} (${count(job.success_records)} ok, ` +
      `${plural(job.error_records, "error")})` :
    records(job);
  field(fields, "records", "Records", recordsText);
  field(fields, "tokens", "Tokens", job.input_tokens === null && job.output_tokens === null ? null :
    `${count(job.input_tokens ?? 0)} in, ${count(job.output_tokens ?? 0)} out`);
  field(fields, "cost", "Cost", money(job.cost), job.cost === null ? "" : `$${job.cost}`);
  field(fields, "bytes_freed", "S3 bytes freed", bytes(job.bytes_freed));
  field(fields, "cleanup", "Cleanup", job.cleanup);
  field(fields, "auto_processing", "Daemon will act", job.auto_processing ? "yes" : "no",
    "The daemon will move the job on by itself: a status check, fetching its results, or a cleanup");
  field(fields, "model_id", "Model", job.model_id);
  field(fields, "group_name", "Group", job.group_name);
  field(fields, "results_fetch_attempts", "Failed fetch attempts", job.results_fetch_attempts);
  field(fields, "cleanup_attempts", "Failed cleanup attempts", job.cleanup_attempts);
  field(fields, "last_checked_at", "Last checked", moment(job.last_checked_at));
  field(fields, "input_s3_uri", "Input", job.input_s3_uri);
  field(fields, "s3_folder", "Its S3 folder", job.s3_folder);
  field(fields, "output_s3_prefix", "Output", job.output_s3_prefix);

  const retry = $("detail-retry");
  retry.hidden = job.status !== "RESULT_FETCH_FAILED";
  const cleanup = $("detail-cleanup");
  cleanup.hidden = job.cleanup === "done";
  cleanup.disabled = !["pending", "failed"].includes(job.cleanup);
  cleanup.title = cleanup.disabled ?
    (job.cleanup === "kept" ? "A failed job's S3 folders are kept" :
      "Its results are not stored yet (or its group is not compiled): its S3 folders are kept") :
    "Delete the job's S3 folders now (asks first)";
}

function renderErrorCounts(counts) {
  const rows = $("detail-errors");
  rows.replaceChildren();
  for (const error of counts.errors) {
    const tr = document.createElement("tr");
    tr.dataset.code = error.error_code ?? "";
    tr.append(cell(error.error_code ?? "(none)", "Error code"), cell(count(error.count), "Records", "num"));
    rows.append(tr);
  }
  if (counts.errors.length === 0) rows.append(emptyRow("No error records.", 2));
}

function shortened(text, size = 160) {
  if (text === null || text === undefined) return null;
  return text.length > size ? `${text.slice(0, size - 1)}…` : text;
}

function renderFirstErrors(page) {
  const rows = $("detail-first-errors");
  rows.replaceChildren();
  for (const record of page.records) {
    const tr = document.createElement("tr");
    tr.append(
      cell(record.record_id, "Record"),
      cell(record.error_code, "Error code"),
      cell(shortened(record.error_message), "Message", "wrap"),
    );
    rows.append(tr);
  }
  if (page.records.length === 0) rows.append(emptyRow("No error records.", 3));
}

function renderRecords(page) {
  const rows = $("detail-records");
  rows.replaceChildren();
  for (const record of page.records) {
    const tr = document.createElement("tr");
    tr.dataset.record = record.record_id;
    const text = record.outcome === "ok" ? record.output_text : record.error_message;
    tr.append(
      cell(record.record_id, "Record"),
      cell(record.outcome, "Outcome", `outcome-${record.outcome}`),
      cell(record.error_code, "Error code"),
      cell(count(record.input_tokens), "Tokens in", "num"),
      cell(count(record.output_tokens), "Tokens out", "num"),
      cell(money(record.cost), "Cost", "num"),
      cell(shortened(text), "Output or error", "wrap"),
    );
    rows.append(tr);
  }
  if (page.records.length === 0) rows.append(emptyRow("No records stored.", 7));
  const first = detail.page * RECORDS_PER_PAGE + 1;
  $("records-range").textContent = page.records.length ?
    `page ${detail.page + 1}: records ${count(first)}–${count(first + page.records.length - 1)}` : "";
  $("records-prev").disabled = detail.page === 0;
  $("records-next").disabled = page.next_cursor === null;
  if (page.next_cursor !== null) detail.cursors[detail.page + 1] = page.next_cursor;
}

async function loadRecords() {
  const job = detail.job;
  const seq = ++detail.seq;
  const query = new URLSearchParams({ limit: RECORDS_PER_PAGE });
  if (detail.cursors[detail.page]) query.set("cursor", detail.cursors[detail.page]);
  const page = await getJSON(jobPath(job, `/records?${query}`));
  if (seq === detail.seq) renderRecords(page);
}

async function loadDetail(job) {
  const [fresh, counts, firstErrors] = await Promise.all([
    getJSON(jobPath(job)),
    getJSON(jobPath(job, "/errors")),
    getJSON(jobPath(job, `/records?outcome=error&limit=${FIRST_ERRORS}`)),
  ]);
  if (detail.job === null || detail.job.batch_job_arn !== job.batch_job_arn) return;
  detail.job = fresh;
  renderDetail(fresh);
  renderErrorCounts(counts);
  renderFirstErrors(firstErrors);
}

function openDetail(job) {
  detail.job = job;
  detail.cursors = [""];
  detail.page = 0;
  show("", true, "detail-message");
  renderDetail({ ...job, input_tokens: null, output_tokens: null, bytes_freed: null });
  $("detail-errors").replaceChildren(emptyRow("Loading…", 2));
  $("detail-first-errors").replaceChildren(emptyRow("Loading…", 3));
  $("detail-records").replaceChildren(emptyRow("Loading…", 7));
  const dialog = $("detail");
  if (!dialog.open) dialog.showModal();
  Promise.all([loadDetail(job), loadRecords()]).catch(
    (error) => show(`Could not read the job: ${error.message}`, false, "detail-message"));
}

function closeDetail() {
  $("detail").close();
}

// -- actions -----------------------------------------------------------------------------------

// A request that changes something, with the admin token (asked for once); null when none
// was given. A token the daemon refuses is forgotten.
async function send(method, path, body) {
  if (!sessionStorage.getItem(TOKEN_KEY)) {
    const token = window.prompt("Admin token (kept for this browser session):");
    if (!token || !token.trim()) return null;
    sessionStorage.setItem(TOKEN_KEY, token.trim());
  }
  const headers = authHeaders();
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let answer = {};
  try {
    answer = await response.json();
  } catch {
    answer = { error: response.statusText, detail: "no JSON in the answer" };
  }
  if (response.status === 401) sessionStorage.removeItem(TOKEN_KEY);
  return { ok: response.ok, status: response.status, body: answer };
}

function refused(answer) {
  return `${answer.body.error}: ${answer.body.detail}`;
}

async function act(path) {
  const answer = await send("POST", path);
  if (answer === null) return;
  if (!answer.ok) {
    show(refused(answer), false);
    return;
  }
  show(`Polling is ${answer.body.state}.`, true);
  renderStatus(answer.body);
}

async function processCompleted() {
  const button = $("process");
  button.disabled = true;
  show("A pass is running…", true);
  try {
    const answer = await send("POST", "/api/batch/process-completed");
    if (answer === null) {
      show("", true);
      return;
    }
    if (!answer.ok) {
      show(refused(answer), false);
      return;
    }
    const report = answer.body.report;
    const did = Object.entries(report)
      .filter(([key, n]) => key !== "jobs" && n > 0)
      .map(([key, n]) => `${n} ${key.replace(/_/g, " ")}`);
    show(`Pass done: ${report.jobs} ${report.jobs === 1 ? "job" : "jobs"} worked on` +
      (did.length ? ` (${did.join(", ")}).` : "."), true);
    refresh();
  } finally {
    button.disabled = false;
  }
}

async function detailAction(path, body, doing, done) {
  const job = detail.job;
  show(doing, true, "detail-message");
  const answer = await send("POST", jobPath(job, path), body);
  if (answer === null) {
    show("", true, "detail-message");
    return;
  }
  if (!answer.ok) {
    show(refused(answer), false, "detail-message");
  } else {
    show(done, true, "detail-message");
  }
  if (detail.job && detail.job.batch_job_arn === job.batch_job_arn) {
    await loadDetail(job).catch(() => {});
  }
  reloadJobs();
}

function retryFetch() {
  return detailAction("/retry", undefined, "Fetching the results again…", "The results are stored.");
}

function cleanupNow() {
  const job = detail.job;
  const folders = [job.s3_folder, job.output_s3_prefix].filter(Boolean).join(" and ");
  const question = `Delete the S3 folders of ${job.job_name || job.job_id} now` +
    (folders ? ` (${folders})` : "") + "? This cannot be undone.";
  if (!window.confirm(question)) {
    show("Nothing was deleted.", true, "detail-message");
    return;
  }
  return detailAction("/cleanup", {}, "Deleting its S3 folders…", "Its S3 folders are deleted.");
}

async function trackJob(event) {
  event.preventDefault();
  const arn = $("track-arn").value.trim();
  const prefix = $("track-prefix").value.trim();
  const body = { batch_job_arn: arn };
  if (prefix) body.input_prefix = prefix;
  const answer = await send("POST", "/api/batch/jobs", body);
  if (answer === null) return;
  if (!answer.ok) {
    show(refused(answer), false, "track-message");
    return;
  }
  const name = answer.body.job_name || answer.body.job_id;
  show(answer.status === 201 ? `Now tracking ${name}.` : `${name} was tracked already.`, true,
    "track-message");
  $("track-form").reset();
  reloadJobs();
}

// -- wiring ------------------------------------------------------------------------------------

async function refresh() {
  try {
    const [status, groups] = await Promise.all([
      getJSON("/api/batch/poller/status"),
      getJSON("/api/batch/groups?limit=50"),
      loadJobs(),
      activity === null || Date.now() - activityReadAt >= ACTIVITY_MS ? loadActivity() : null,
    ]);
    renderStatus(status);
    renderReplicas(status);
    renderGroups(groups.groups);
    $("refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    show(`Could not read the daemon: ${error.message}`, false);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("stop").addEventListener("click", () => act("/api/batch/poller/stop"));
  $("start").addEventListener("click", () => act("/api/batch/poller/start"));
  $("process").addEventListener("click", processCompleted);
  $("forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    show("The token is forgotten.", true);
  });
  $("filter-status").addEventListener("change", filterChanged);
  $("filter-q").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(filterChanged, 250);
  });
  $("job-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(searchTimer);
    filterChanged();
  });
  $("jobs-prev").addEventListener("click", () => {
    listing.offset = Math.max(0, listing.offset - JOBS_PER_PAGE);
    reloadJobs();
  });
  $("jobs-next").addEventListener("click", () => {
    listing.offset += JOBS_PER_PAGE;
    reloadJobs();
  });
  $("track-form").addEventListener("submit", trackJob);
  $("detail-close").addEventListener("click", closeDetail);
  // Closed, the detail gives the keyboard's focus back to the job's row (a refresh may have
  // drawn it anew meanwhile).
  $("detail").addEventListener("close", () => {
    const arn = detail.job && detail.job.batch_job_arn;
    detail.job = null;
    const row = [...$("job-rows").children].find((tr) => tr.dataset.job === arn);
    if (row) row.focus();
  });
  $("detail-retry").addEventListener("click", retryFetch);
  $("detail-cleanup").addEventListener("click", cleanupNow);
  $("records-prev").addEventListener("click", () => {
    detail.page = Math.max(0, detail.page - 1);
    loadRecords().catch((error) => show(error.message, false, "detail-message"));
  });
  $("records-next").addEventListener("click", () => {
    detail.page += 1;
    loadRecords().catch((error) => show(error.message, false, "detail-message"));
  });
  let width = window.innerWidth;
  window.addEventListener("resize", () => {
    if (activity !== null && window.innerWidth !== width) renderChart(activity);
    width = window.innerWidth;
  });
  refresh();
  setInterval(refresh, REFRESH_MS);
});
