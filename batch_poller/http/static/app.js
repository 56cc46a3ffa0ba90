// The status page: reads the API every few seconds; pause and resume send the admin token,
// asked for once and kept for this browser session only.
"use strict";

const REFRESH_MS = 5000;
const TOKEN_KEY = "batch-poller-admin-token";

const $ = (id) => document.getElementById(id);

function when(iso) {
  if (!iso) return "–";
  const seconds = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
  const size = Math.abs(seconds);
  const span =
    size < 90 ? `${size} s` :
    size < 5400 ? `${Math.round(size / 60)} min` :
    size < 172800 ? `${Math.round(size / 3600)} h` :
    `${Math.round(size / 86400)} days`;
  return seconds >= 0 ? `${span} ago` : `in ${span}`;
}

function show(message, ok) {
  const box = $("message");
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

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

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
  $("next-pass").textContent = status.state === "running" ? when(status.next_pass_at) : "paused";
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

// A failed job says why under its status: Bedrock's message or the daemon's last error.
function statusCell(job) {
  const td = cell(job.status, "Status", `status status-${job.status}`);
  if (job.reason) {
    td.title = job.reason;
    const why = document.createElement("div");
    why.className = "reason";
    why.textContent = job.reason;
    td.append(why);
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

function renderJobs(jobs) {
  const rows = $("job-rows");
  rows.replaceChildren();
  if (jobs.length === 0) {
    rows.append(emptyRow("No tracked jobs yet.", 9));
    return;
  }
  for (const job of jobs) {
    const tr = document.createElement("tr");
    tr.dataset.job = job.job_id;
    tr.append(
      jobCell(job),
      statusCell(job),
      cell(job.auto_processing ? "yes" : "no", "Auto"),
      cell(records(job), "Records", "num"),
      cell(job.success_records, "OK", "num"),
      cell(job.error_records, "Errors", "num"),
      cell(money(job.cost), "Cost", "num"),
      cell(job.cleanup, "Cleanup", `cleanup-${job.cleanup}`),
      cell(when(job.last_checked_at), "Last checked"),
    );
    rows.append(tr);
  }
}

// Stored records, or Bedrock's progress while the job runs ("120/250").
function records(job) {
  if (job.total_records !== null) return job.total_records;
  if (job.progress_total === null) return null;
  return `${job.progress_processed ?? "?"}/${job.progress_total}`;
}

function money(cost) {
  return cost === null ? null : `$${Number(cost).toFixed(4)}`;
}

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

async function refresh() {
  try {
    const [status, jobs, groups] = await Promise.all([
      getJSON("/api/batch/poller/status"),
      getJSON("/api/batch/jobs?limit=200"),
      getJSON("/api/batch/groups?limit=50"),
    ]);
    renderStatus(status);
    renderReplicas(status);
    renderGroups(groups.groups);
    renderJobs(jobs.jobs);
    $("refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    show(`Could not read the daemon: ${error.message}`, false);
  }
}

async function act(path) {
  let token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    token = window.prompt("Admin token (kept for this browser session):");
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token.trim());
  }
  const response = await fetch(path, { method: "POST", headers: authHeaders() });
  const body = await response.json();
  if (response.status === 401) sessionStorage.removeItem(TOKEN_KEY);
  if (!response.ok) {
    show(`${body.error}: ${body.detail}`, false);
    return;
  }
  show(`Polling is ${body.state}.`, true);
  renderStatus(body);
}

document.addEventListener("DOMContentLoaded", () => {
  $("stop").addEventListener("click", () => act("/api/batch/poller/stop"));
  $("start").addEventListener("click", () => act("/api/batch/poller/start"));
  $("forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    show("The token is forgotten.", true);
  });
  refresh();
  setInterval(refresh, REFRESH_MS);
});
