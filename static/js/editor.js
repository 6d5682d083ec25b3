// Mixtape editor: library search, add/remove/reorder (drag and drop with Sortable, or the
// keyboard), preview playback and the "unsaved changes" indicator. The track list is plain
// form fields (<input name="track"> in list order), so saving is an ordinary form POST.
(function () {
  "use strict";

  const form = document.getElementById("mixtape-form");
  if (!form) return;

  const list = document.getElementById("tracklist");
  const empty = document.getElementById("tracklist-empty");
  const summary = document.getElementById("tracklist-summary");
  const template = document.getElementById("track-item-template");
  const searchInput = document.getElementById("library-search");
  const results = document.getElementById("search-results");
  const searchStatus = document.getElementById("search-status");
  const previousButton = document.getElementById("search-previous");
  const nextButton = document.getElementById("search-next");
  const unsaved = document.getElementById("unsaved-indicator");
  const previewBar = document.getElementById("preview-bar");
  const previewPlayer = document.getElementById("preview-player");
  const previewTitle = document.getElementById("preview-title");
  const previewQuality = form.dataset.previewQuality || "medium";

  // --- Helpers ---------------------------------------------------------------------------

  function formatDuration(seconds) {
    const total = Math.round(Number(seconds) || 0);
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = String(total % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  }

  const announcer = document.getElementById("tracklist-announcer");
  function announce(text) {
    announcer.textContent = text; // read out by screen readers (aria-live)
  }

  function items() {
    return Array.from(list.querySelectorAll(".track-item"));
  }

  function titleOf(item) {
    return item.querySelector(".track-title").textContent.trim();
  }

  // --- Track list ------------------------------------------------------------------------

  function renumber() {
    const all = items();
    let seconds = 0;
    all.forEach((item, index) => {
      item.querySelector(".track-position").textContent = String(index + 1);
      item.setAttribute("aria-label", `${index + 1} of ${all.length}: ${titleOf(item)}`);
      seconds += Number(item.dataset.duration) || 0;
    });
    empty.classList.toggle("d-none", all.length > 0);
    summary.textContent = all.length ? `${all.length} track${all.length === 1 ? "" : "s"} · ${formatDuration(seconds)}` : "";
    markDirty();
  }

  function buildItem(track) {
    const item = template.content.firstElementChild.cloneNode(true);
    item.dataset.trackId = track.id;
    item.dataset.duration = track.duration || 0;
    item.dataset.streamUrl = track.stream_url;
    item.querySelector("input[name=track]").value = track.id;
    item.querySelector(".track-cover").src = `${track.cover_url}?size=64`;
    item.querySelector(".track-title").textContent = track.title;
    item.querySelector(".track-meta").textContent = [track.artist, track.album].filter(Boolean).join(" — ");
    item.querySelector(".track-duration").textContent = formatDuration(track.duration);
    const labels = { preview: "Preview", up: "Move %s up", down: "Move %s down", remove: "Remove %s" };
    item.querySelectorAll("[data-action]").forEach((button) => {
      const label = labels[button.dataset.action];
      button.setAttribute("aria-label", label.includes("%s") ? label.replace("%s", track.title) : `${label} ${track.title}`);
    });
    return item;
  }

  function addTrack(track) {
    list.appendChild(buildItem(track));
    renumber();
    announce(`Added ${track.title} at position ${items().length}.`);
  }

  function move(item, step) {
    const all = items();
    const index = all.indexOf(item);
    const target = index + step;
    if (target < 0 || target >= all.length) return;
    if (step < 0) list.insertBefore(item, all[target]);
    else list.insertBefore(item, all[target].nextSibling);
    renumber();
    item.focus();
    announce(`Moved ${titleOf(item)} to position ${target + 1} of ${all.length}.`);
  }

  function remove(item) {
    const all = items();
    const index = all.indexOf(item);
    const title = titleOf(item);
    item.remove();
    renumber();
    const rest = items();
    (rest[Math.min(index, rest.length - 1)] || searchInput).focus();
    announce(`Removed ${title}.`);
  }

  list.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const item = button.closest(".track-item");
    const action = button.dataset.action;
    if (action === "up") move(item, -1);
    else if (action === "down") move(item, 1);
    else if (action === "remove") remove(item);
    else if (action === "preview") preview(item.dataset.streamUrl, titleOf(item));
  });

  list.addEventListener("keydown", (event) => {
    const item = event.target.closest(".track-item");
    if (!item || event.target !== item) return; // keys inside buttons keep their meaning
    if (event.altKey && event.key === "ArrowUp") {
      event.preventDefault();
      move(item, -1);
    } else if (event.altKey && event.key === "ArrowDown") {
      event.preventDefault();
      move(item, 1);
    } else if (event.key === "ArrowUp" || event.key === "ArrowDown") {
      event.preventDefault();
      const all = items();
      const next = all[all.indexOf(item) + (event.key === "ArrowUp" ? -1 : 1)];
      if (next) next.focus();
    } else if (event.key === "Delete" || event.key === "Backspace") {
      event.preventDefault();
      remove(item);
    }
  });

  // --- Library search --------------------------------------------------------------------

  let searchPage = 1;
  let searchTimer = null;
  let searchController = null;
  const resultData = new Map();

  function renderResults(data) {
    results.replaceChildren();
    resultData.clear();
    for (const track of data.results) {
      resultData.set(String(track.id), track);
      const li = document.createElement("li");
      li.className = "list-group-item result-item d-flex align-items-center gap-2";
      li.dataset.trackId = track.id;
      const cover = document.createElement("img");
      cover.className = "track-cover rounded";
      cover.alt = "";
      cover.width = cover.height = 40;
      cover.loading = "lazy";
      cover.src = `${track.cover_url}?size=64`;
      const text = document.createElement("div");
      text.className = "flex-grow-1 min-w-0";
      const title = document.createElement("div");
      title.className = "text-truncate fw-medium";
      title.textContent = track.title;
      const meta = document.createElement("div");
      meta.className = "text-truncate small text-body-secondary";
      meta.textContent = [track.artist, track.album].filter(Boolean).join(" — ");
      text.append(title, meta);
      const badge = document.createElement("span");
      badge.className = `badge d-none d-sm-inline-block ${track.lossless ? "text-bg-success" : "text-bg-secondary"}`;
      badge.textContent = track.format;
      const length = document.createElement("span");
      length.className = "small text-body-secondary tabular-nums";
      length.textContent = formatDuration(track.duration);
      const group = document.createElement("div");
      group.className = "btn-group btn-group-sm flex-shrink-0";
      const play = document.createElement("button");
      play.type = "button";
      play.className = "btn btn-outline-secondary";
      play.dataset.action = "preview";
      play.textContent = "▶";
      play.setAttribute("aria-label", `Preview ${track.title}`);
      const add = document.createElement("button");
      add.type = "button";
      add.className = "btn btn-outline-primary";
      add.dataset.action = "add";
      add.textContent = "Add";
      add.setAttribute("aria-label", `Add ${track.title} to the mixtape`);
      group.append(play, add);
      li.append(cover, text, badge, length, group);
      results.appendChild(li);
    }
    previousButton.disabled = !data.has_previous;
    nextButton.disabled = !data.has_next;
    if (!data.results.length) searchStatus.textContent = data.query.trim() ? `No tracks match “${data.query}”.` : "The library is empty.";
    else {
      const first = (data.page - 1) * 25 + 1;
      searchStatus.textContent = `Results ${first}–${first + data.results.length - 1}${data.has_next ? " (more on the next page)" : ""}. Drag a result into the track list or press Add.`;
    }
  }

  async function runSearch(page) {
    if (searchController) searchController.abort(); // only the newest query's answer is shown
    searchController = new AbortController();
    searchPage = page;
    const url = `${form.dataset.searchUrl}?q=${encodeURIComponent(searchInput.value)}&page=${page}`;
    searchStatus.textContent = "Searching…";
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, signal: searchController.signal });
      if (!response.ok) throw new Error(`the server answered ${response.status}`);
      renderResults(await response.json());
    } catch (error) {
      if (error.name === "AbortError") return;
      searchStatus.textContent = `Search failed: ${error.message}. Try again.`;
    }
  }

  searchInput.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => runSearch(1), 250); // debounce: one request per pause in typing
  });
  searchInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault(); // Enter searches; it must not submit the mixtape form
      clearTimeout(searchTimer);
      runSearch(1);
    }
  });
  previousButton.addEventListener("click", () => runSearch(Math.max(1, searchPage - 1)));
  nextButton.addEventListener("click", () => runSearch(searchPage + 1));

  results.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const track = resultData.get(button.closest(".result-item").dataset.trackId);
    if (button.dataset.action === "add") addTrack(track);
    else preview(track.stream_url, track.title);
  });

  // --- Drag and drop (Sortable, vendored) -------------------------------------------------

  if (window.Sortable) {
    Sortable.create(list, {
      group: { name: "mixtape", pull: false, put: true },
      animation: 150,
      filter: "button",
      preventOnFilter: false,
      onAdd(event) {
        // A search result was dropped in: replace the clone with a real track item.
        const track = resultData.get(event.item.dataset.trackId);
        const item = buildItem(track);
        event.item.replaceWith(item);
        renumber();
        announce(`Added ${track.title} at position ${items().indexOf(item) + 1}.`);
      },
      onUpdate: renumber,
    });
    Sortable.create(results, {
      group: { name: "mixtape", pull: "clone", put: false },
      sort: false,
      animation: 150,
      filter: "button",
      preventOnFilter: false,
    });
  }

  // --- Preview ---------------------------------------------------------------------------

  function preview(streamUrl, title) {
    previewBar.classList.remove("d-none");
    previewTitle.textContent = `Preview: ${title}`;
    previewPlayer.src = `${streamUrl}?quality=${encodeURIComponent(previewQuality)}`;
    previewPlayer.play().catch(() => {}); // a browser may refuse autoplay; the controls remain
  }

  document.getElementById("preview-close").addEventListener("click", () => {
    previewPlayer.pause();
    previewPlayer.removeAttribute("src");
    previewPlayer.load();
    previewBar.classList.add("d-none");
  });

  // --- Unsaved changes -------------------------------------------------------------------

  function snapshot() {
    const data = new FormData(form);
    data.delete("csrfmiddlewaretoken");
    const cover = data.get("cover_upload");
    data.delete("cover_upload");
    const parts = Array.from(data.entries()).map(([k, v]) => `${k}=${v}`);
    if (cover && cover.name) parts.push(`cover=${cover.name}:${cover.size}`);
    return parts.join("&");
  }

  let saved = null;
  let submitting = false;

  function markDirty() {
    if (saved === null) return;
    unsaved.classList.toggle("d-none", snapshot() === saved);
  }

  form.addEventListener("input", markDirty);
  form.addEventListener("change", markDirty);
  form.addEventListener("submit", () => {
    submitting = true;
  });
  window.addEventListener("beforeunload", (event) => {
    if (!submitting && saved !== null && snapshot() !== saved) {
      event.preventDefault();
      event.returnValue = ""; // older browsers need a value to show their prompt
    }
  });

  renumber();
  saved = snapshot();
  // A form sent back with errors holds changes that were never saved.
  if (document.getElementById("form-errors")) {
    saved = "";
    markDirty();
    document.getElementById("form-errors").focus();
  }
})();

// Share links: "Copy" puts the link on the clipboard (or selects it where that is not allowed).
(function () {
  "use strict";

  document.querySelectorAll(".copy-link").forEach((button) => {
    button.addEventListener("click", async () => {
      const field = document.getElementById(button.dataset.copy);
      try {
        await navigator.clipboard.writeText(field.value);
        button.textContent = "Copied";
        setTimeout(() => (button.textContent = "Copy"), 2000);
      } catch (error) {
        field.focus();
        field.select();
      }
    });
  });
})();
