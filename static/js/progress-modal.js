// The caching progress modal: follows a batch's Server-Sent Events (/events/batches/<id>/).
// The page carries the batch it should follow (the one just saved, or one still running when
// the page is reloaded): its state and log lines so far, and the event id they were read at.
// The stream is opened from that id, so the server replays whatever happened while the page
// loaded; EventSource reconnects by itself after a network drop, sending Last-Event-ID.
(function () {
  "use strict";

  const element = document.getElementById("cache-progress");
  if (!element || !window.bootstrap) return;

  const modal = bootstrap.Modal.getOrCreateInstance(element);
  const bar = document.getElementById("cache-progress-bar");
  const barFill = bar.querySelector(".progress-bar");
  const status = document.getElementById("cache-progress-status");
  const log = document.getElementById("cache-progress-log");
  const summaryBox = document.getElementById("cache-progress-summary");
  const seen = new Set();
  const CLOSE_DELAY_MS = 2500;
  let source = null;
  let finished = false;

  const LOG_CLASSES = { completed: "text-success", failed: "text-danger", skipped: "text-body-secondary" };
  const LOG_MARKS = { completed: "✓", failed: "✗", skipped: "–" };

  function addLogLine(line) {
    // A line may arrive twice (rendered with the page, then replayed); show it once.
    const key = `${line.track_id}:${line.quality}:${line.status}`;
    if (line.track_id === undefined || seen.has(key)) return;
    seen.add(key);
    const li = document.createElement("li");
    li.className = LOG_CLASSES[line.status] || "";
    li.textContent = `${LOG_MARKS[line.status] || "…"} ${line.message}`;
    log.prepend(li); // newest first, so it stays in view
  }

  function setProgress(current, total) {
    const percent = total ? Math.round((100 * current) / total) : 100;
    barFill.style.width = `${percent}%`;
    barFill.textContent = `${percent}%`;
    bar.setAttribute("aria-valuenow", String(percent));
  }

  function finish(data) {
    finished = true;
    if (source) source.close();
    const failed = data.status === "failed";
    status.dataset.state = data.status;
    status.textContent = failed ? "Finished with failures" : "Caching completed";
    barFill.classList.remove("progress-bar-animated", "progress-bar-striped");
    barFill.classList.add(failed ? "bg-warning" : "bg-success");
    setProgress(data.total, data.total);
    summaryBox.className = `alert ${failed ? "alert-warning" : "alert-success"}`;
    summaryBox.textContent = failed
      ? `${data.message}. Failed tracks are played from the original file; the admin shows why they failed.`
      : `${data.message}. Every track is ready to stream.`;
    // The batch is over: a reload of this page must not open the modal again.
    const url = new URL(window.location.href);
    if (url.searchParams.has("batch")) {
      url.searchParams.delete("batch");
      window.history.replaceState(null, "", url);
    }
    if (!failed) setTimeout(() => modal.hide(), CLOSE_DELAY_MS);
  }

  function onProgress(event) {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch (error) {
      return;
    }
    setProgress(data.current, data.total);
    if (data.track_id !== undefined && data.status !== "in_progress") addLogLine(data);
    const final = (data.step === "done" || data.step === "snapshot") && (data.status === "completed" || data.status === "failed");
    if (final) {
      finish(data);
    } else if (!finished) {
      status.dataset.state = "in_progress";
      const detail = data.step === "track" ? ` · ${data.message}` : "";
      status.textContent = `${data.current} of ${data.total} done${detail}`;
    }
  }

  function connect(url) {
    source = new EventSource(url);
    source.addEventListener("progress", onProgress);
    source.addEventListener("error", () => {
      // EventSource retries on its own; CLOSED means the server refused (e.g. logged out).
      if (!finished && source.readyState === EventSource.CLOSED) {
        status.dataset.state = "error";
        status.textContent = "Lost the connection to the progress stream. Reload the page to follow the batch again.";
      }
    });
  }

  const state = JSON.parse(document.getElementById("cache-progress-state").textContent);
  state.log.forEach(addLogLine);
  element.addEventListener("hidden.bs.modal", () => {
    if (finished && source) source.close();
  });
  modal.show();
  onProgress({ data: JSON.stringify(state.snapshot) });
  if (!finished) connect(state.events_url);
})();
