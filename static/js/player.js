// Share page player: one <audio> element over /stream/<id>/?quality=...&format=..., with
// play/pause, previous/next, a seek bar, and quality and format selectors that keep the
// position when switching. "Automatic" takes the account's Streaming format when one is set
// and the browser plays it; else it asks the browser which formats it plays (Opus, then AAC,
// then MP3, which every browser plays) and streams the best one.
(function () {
  "use strict";

  const root = document.getElementById("player");
  const data = document.getElementById("playlist-data");
  if (!root || !data) return;

  const playlist = JSON.parse(data.textContent);
  const audio = document.getElementById("player-audio");
  const toggle = document.getElementById("player-toggle");
  const previous = document.getElementById("player-previous");
  const next = document.getElementById("player-next");
  const seek = document.getElementById("player-seek");
  const elapsed = document.getElementById("player-elapsed");
  const durationLabel = document.getElementById("player-duration");
  const title = document.getElementById("player-title");
  const cover = document.getElementById("player-cover");
  const artist = document.getElementById("player-artist");
  const qualitySelect = document.getElementById("player-quality");
  const formatSelect = document.getElementById("player-format");
  const formats = JSON.parse(document.getElementById("player-formats").textContent);
  const sourceLine = document.getElementById("player-source");
  const errorLine = document.getElementById("player-error");
  const rows = Array.from(document.querySelectorAll(".share-track"));
  const STORAGE_KEY = "mixtapes.quality";
  const FORMAT_KEY = "mixtapes.format";

  let index = 0;
  let seeking = false;
  let pendingStart = null; // {time, play}: applied once the new source has its metadata
  let sourceState = null; // what the server says it streams for the current source (X-Audio-Cache)
  let waitTimer = null; // polls for the MP3 after an original the browser could not play
  let reloadedUrl = null; // reloaded once when its MP3 was ready: never twice, so no loops
  let retriedUrl = null; // reloaded once after its MP3 being made failed: never twice either

  function formatTime(seconds) {
    const total = Math.max(0, Math.floor(Number(seconds) || 0));
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = String(total % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  }

  function quality() {
    return qualitySelect.value;
  }

  // --- Which format: what this browser can play, best first -------------------------------

  const TYPES = {
    opus: ['audio/ogg; codecs="opus"', 'audio/webm; codecs="opus"'],
    aac: ['audio/mp4; codecs="mp4a.40.2"', "audio/aac"],
  };

  function browserPlays(name) {
    const probe = document.createElement("audio");
    const types = TYPES[name] || [];
    // canPlayType answers "probably", "maybe" or ""; MediaSource knows codecs more precisely.
    return types.some(
      (type) =>
        probe.canPlayType(type) !== "" ||
        (typeof MediaSource !== "undefined" && MediaSource.isTypeSupported && MediaSource.isTypeSupported(type)),
    );
  }

  // The account's Streaming format, when the listener chose one and this browser plays it;
  // else the best format the browser plays.
  const accountFormat = root.dataset.accountFormat;
  const accountPick = formats[accountFormat] && (accountFormat === "mp3" || browserPlays(accountFormat));
  const bestFormat =
    (accountPick && accountFormat) || ["opus", "aac"].find((name) => formats[name] && browserPlays(name)) || "mp3";

  function format() {
    const chosen = formatSelect ? formatSelect.value : "auto";
    return chosen === "auto" ? bestFormat : chosen;
  }

  // "medium" for an MP3, "opus:medium" otherwise: how the server names a rendition.
  function variant() {
    return format() === "mp3" ? quality() : `${format()}:${quality()}`;
  }

  function variantLabel() {
    const spec = formats[format()];
    return `${spec.label} ${spec.bitrates[quality()]}k`;
  }

  function labelQualities() {
    const spec = formats[format()];
    for (const option of qualitySelect.options) {
      if (spec.bitrates[option.value]) {
        const name = option.value.charAt(0).toUpperCase() + option.value.slice(1);
        option.textContent = `${name} · ${spec.label} ${spec.bitrates[option.value]}k`;
      }
    }
    if (formatSelect) formatSelect.options[0].textContent = `Automatic (${formats[bestFormat].label})`;
  }

  // A share link's token rides along on every stream and picture URL of its page.
  const shareParam = root.dataset.share ? `&share=${encodeURIComponent(root.dataset.share)}` : "";

  function streamUrl(track) {
    const q = quality();
    const kind = q === "original" ? "" : `&format=${encodeURIComponent(format())}`;
    return `${track.stream_url}?quality=${encodeURIComponent(q)}${kind}${shareParam}`;
  }

  function coverUrl(track, size) {
    return `${track.cover_url}?size=${size}${shareParam}`;
  }

  // --- Which tracks stream from the cache ------------------------------------------------

  function badgeFor(track) {
    const q = quality();
    if (q === "original") return ["Original file", "text-bg-light border"];
    if (!track.lossless) return ["Original (already lossy)", "text-bg-light border"];
    if (track.cached.includes(variant())) return ["From cache", "text-bg-success"];
    return ["Not cached yet", "text-bg-warning"];
  }

  function renderBadges() {
    rows.forEach((row, i) => {
      const [text, classes] = badgeFor(playlist[i]);
      const badge = row.querySelector(".cache-badge");
      badge.textContent = text;
      badge.className = `badge cache-badge ${classes}`;
    });
  }

  async function describeSource(track, url) {
    // The media element cannot read headers; a HEAD request says what the server sends.
    try {
      const response = await fetch(url, { method: "HEAD", credentials: "same-origin" });
      if (url !== audio.currentSrc && !audio.currentSrc.endsWith(url)) return; // the track changed meanwhile
      const cache = response.headers.get("X-Audio-Cache");
      sourceState = cache;
      if (cache === "hit") {
        sourceLine.textContent = `Streaming the ${variantLabel()} from the cache.`;
        if (!track.cached.includes(variant())) track.cached.push(variant());
      } else if (cache === "progressive") {
        // The rendition itself, followed as ffmpeg writes it (not yet cached: the badge stays).
        sourceLine.textContent = `Streaming the ${variantLabel()} as it is being made.`;
      } else if (cache === "miss") {
        sourceLine.textContent = `Streaming the original file; the ${variantLabel()} is being made for next time.`;
      } else {
        sourceLine.textContent = "Streaming the original file.";
      }
      renderBadges();
    } catch (error) {
      sourceLine.textContent = "";
    }
  }

  // --- Playback --------------------------------------------------------------------------

  function load(newIndex, options = {}) {
    index = (newIndex + playlist.length) % playlist.length;
    const track = playlist[index];
    errorLine.classList.add("d-none");
    title.textContent = track.title;
    cover.src = coverUrl(track, 128);
    describeForSession(track);
    applyGain();
    artist.textContent = [track.artist, track.album].filter(Boolean).join(" — ");
    rows.forEach((row, i) => {
      row.classList.toggle("is-playing", i === index);
      if (i === index) row.setAttribute("aria-current", "true");
      else row.removeAttribute("aria-current");
    });
    pendingStart = { time: options.startAt || 0, play: Boolean(options.play) };
    sourceState = null;
    // After a miss the same URL answers with other bytes (the MP3, not the original): a new
    // query string keeps the browser from reusing what it fetched before.
    const url = options.fresh ? `${streamUrl(track)}&retry=${Date.now()}` : streamUrl(track);
    audio.src = url;
    audio.load();
    seek.max = String(track.duration || 0);
    seek.value = "0";
    durationLabel.textContent = formatTime(track.duration);
    elapsed.textContent = formatTime(options.startAt || 0);
    describeSource(track, url);
  }

  function play() {
    audio.play().catch((error) => {
      if (error.name !== "AbortError") showError(`Playback did not start: ${error.message}`);
    });
  }

  function showError(message) {
    errorLine.textContent = message;
    errorLine.classList.remove("d-none");
  }

  audio.addEventListener("loadedmetadata", () => {
    if (Number.isFinite(audio.duration)) {
      seek.max = String(audio.duration);
      durationLabel.textContent = formatTime(audio.duration);
    }
    if (pendingStart) {
      const start = pendingStart;
      pendingStart = null;
      if (start.time) audio.currentTime = Math.min(start.time, audio.duration || start.time);
      if (start.play) play();
    }
  });
  // Where playback really is: a jump of more than a couple of seconds that no seek asked for is
  // not playing (Chromium jumps to the end when a stream stops short), so it is not recorded.
  let heardUpTo = 0;
  audio.addEventListener("seeking", () => {
    heardUpTo = audio.currentTime;
  });
  audio.addEventListener("emptied", () => {
    heardUpTo = pendingStart ? pendingStart.time : 0;
  });
  // --- The next track, prepared before this one ends ----------------------------------------
  // Its first bytes are asked for ahead: a miss is queued (at play priority) early enough to be
  // made by the time it plays, and a hit's first bytes come from the server's page cache. The
  // answer is read only as far as its headers and first chunk, then the request is dropped.
  const PREPARE_AHEAD_SECONDS = 30;
  const prepared = new Set();

  async function prepareNext() {
    if (index >= playlist.length - 1) return;
    const url = streamUrl(playlist[index + 1]);
    if (prepared.has(url)) return;
    prepared.add(url);
    const controller = new AbortController();
    try {
      const response = await fetch(url, {
        credentials: "same-origin",
        headers: { Range: "bytes=0-65535" },
        signal: controller.signal,
      });
      if (response.body) await response.body.getReader().read();
    } catch (error) {
      prepared.delete(url); // try again on the next tick
    } finally {
      controller.abort();
    }
  }

  audio.addEventListener("timeupdate", () => {
    const length = Number.isFinite(audio.duration) ? audio.duration : playlist[index].duration || 0;
    if (length && !audio.paused && length - audio.currentTime < Math.min(PREPARE_AHEAD_SECONDS, length / 2)) {
      prepareNext();
    }
    if (!audio.seeking && Math.abs(audio.currentTime - heardUpTo) < 2) heardUpTo = audio.currentTime;
    if (seeking) return;
    seek.value = String(audio.currentTime);
    elapsed.textContent = formatTime(audio.currentTime);
    seek.setAttribute("aria-valuetext", `${formatTime(audio.currentTime)} of ${formatTime(audio.duration)}`);
  });
  function showPlaying(playing) {
    toggle.querySelector(".icon-play").classList.toggle("d-none", playing);
    toggle.querySelector(".icon-pause").classList.toggle("d-none", !playing);
    toggle.setAttribute("aria-label", playing ? "Pause" : "Play");
  }
  audio.addEventListener("play", () => showPlaying(true));
  audio.addEventListener("pause", () => showPlaying(false));
  audio.addEventListener("ended", () => {
    // An MP3 being made whose transcode failed ends early: the browser stops where the bytes
    // stopped (and jumps to the end). Go on from there with whatever the server sends now.
    const length = playlist[index].duration || audio.duration;
    if (sourceState === "progressive" && length - heardUpTo > 2 && retryFrom(heardUpTo)) return;
    if (index < playlist.length - 1) load(index + 1, { play: true });
  });
  audio.addEventListener("error", () => {
    if (!audio.getAttribute("src")) return;
    const codes = { 1: "aborted", 2: "a network error", 3: "a decoding error", 4: "an unsupported format" };
    const reason = codes[audio.error && audio.error.code] || "unknown error";
    if (sourceState === "progressive" && retryFrom(pendingStart ? pendingStart.time : heardUpTo)) return;
    if (quality() !== "original") waitForRendition(index, reason);
    else showError(`This track could not be played (${reason}). Try an MP3 quality.`);
  });

  // The MP3 being made failed mid-stream: ask again from the same place, once. The server now
  // sends the finished MP3, a retry being made, or the original.
  function retryFrom(position) {
    const url = streamUrl(playlist[index]);
    if (retriedUrl === url) return false;
    retriedUrl = url;
    load(index, { startAt: position, play: true, fresh: true });
    return true;
  }

  // On a cache miss the server sends the original file, which a browser may not decode
  // (WavPack, APE...). The miss also queued the MP3 at play priority: wait for it, then go on
  // from the same position.
  async function waitForRendition(forIndex, reason) {
    clearTimeout(waitTimer);
    const track = playlist[forIndex];
    const url = streamUrl(track);
    if (reloadedUrl === url) {
      showError(`This track could not be played (${reason}).`); // the MP3 itself failed: do not loop
      return;
    }
    // Where the listener was: the start the failed load was going to seek to, if any.
    const position = pendingStart ? pendingStart.time : audio.currentTime;
    const deadline = Date.now() + 180000;
    sourceLine.textContent = `This browser cannot play the original file; preparing the ${variantLabel()} of this track…`;
    const poll = async () => {
      if (index !== forIndex || url !== streamUrl(track)) return; // the listener moved on
      try {
        const response = await fetch(url, { method: "HEAD", credentials: "same-origin" });
        // The finished MP3, or one being made that can be followed already.
        if (["hit", "progressive"].includes(response.headers.get("X-Audio-Cache"))) {
          reloadedUrl = url;
          load(forIndex, { startAt: position, play: true, fresh: true });
          return;
        }
      } catch (error) {
        /* try again below */
      }
      if (Date.now() < deadline) waitTimer = setTimeout(poll, 1500);
      else showError(`This track could not be played (${reason}), and no ${variantLabel()} was ready in time.`);
    };
    waitTimer = setTimeout(poll, 1000);
  }

  toggle.addEventListener("click", () => {
    if (!audio.getAttribute("src")) load(index, { play: true });
    else if (audio.paused) play();
    else audio.pause();
  });
  previous.addEventListener("click", () => {
    // As on most players: "previous" restarts the track unless it has only just begun.
    if (audio.currentTime > 3) audio.currentTime = 0;
    else load(index - 1, { play: true });
  });
  next.addEventListener("click", () => load(index + 1, { play: true }));

  seek.addEventListener("input", () => {
    seeking = true;
    elapsed.textContent = formatTime(seek.value);
  });
  seek.addEventListener("change", () => {
    seeking = false;
    if (!audio.getAttribute("src")) load(index, { startAt: Number(seek.value) });
    else if (pendingStart) pendingStart.time = Number(seek.value); // still loading: seek once it can
    else audio.currentTime = Number(seek.value);
  });

  function switchFile(key, value) {
    try {
      localStorage.setItem(key, value);
    } catch (error) {
      /* private browsing: the choice lasts for this page only */
    }
    labelQualities();
    renderBadges();
    if (!audio.getAttribute("src")) return;
    // Same track, same position, same play/pause state; only the file changes. If the previous
    // switch has not loaded yet, its pending start is where the listener is.
    const here = pendingStart ? pendingStart : { time: audio.currentTime, play: !audio.paused };
    load(index, { startAt: here.time, play: here.play });
  }
  qualitySelect.addEventListener("change", () => switchFile(STORAGE_KEY, quality()));
  if (formatSelect) formatSelect.addEventListener("change", () => switchFile(FORMAT_KEY, formatSelect.value));

  rows.forEach((row, i) => row.querySelector(".play-track").addEventListener("click", () => load(i, { play: true })));

  // --- ReplayGain: the tracks' loudness evened out, never louder than their peaks allow --------

  const loudnessSwitch = document.getElementById("player-replaygain");
  const LOUDNESS_KEY = "mixtapes-replaygain";
  let gainNode = null;

  function wantedGain(track) {
    if (!loudnessSwitch.checked || !track.gain) return 1;
    let linear = 10 ** (track.gain.db / 20);
    if (track.gain.peak) linear = Math.min(linear, 1 / track.gain.peak); // no clipping
    return linear;
  }

  function applyGain() {
    const linear = wantedGain(playlist[index]);
    audio.dataset.gain = linear.toFixed(4); // what is applied (the tests read it)
    if (linear > 1 && !gainNode && typeof AudioContext !== "undefined") {
      // Louder than the file needs Web Audio; quieter is the element's own volume.
      const context = new AudioContext();
      gainNode = context.createGain();
      context.createMediaElementSource(audio).connect(gainNode).connect(context.destination);
      audio.addEventListener("play", () => context.resume());
    }
    if (gainNode) {
      gainNode.gain.value = linear;
      audio.volume = 1;
    } else {
      audio.volume = Math.min(1, linear);
    }
  }

  try {
    loudnessSwitch.checked = localStorage.getItem(LOUDNESS_KEY) === "on";
  } catch (error) {
    /* no storage: off */
  }
  loudnessSwitch.addEventListener("change", () => {
    try {
      localStorage.setItem(LOUDNESS_KEY, loudnessSwitch.checked ? "on" : "off");
    } catch (error) {
      /* this page only */
    }
    applyGain();
  });
  applyGain();

  // --- Media Session: the lock screen, the notification shade, headset and keyboard keys ----

  const session = "mediaSession" in navigator ? navigator.mediaSession : null;
  const SKIP_SECONDS = 10;

  function describeForSession(track) {
    if (!session || typeof MediaMetadata === "undefined") return;
    session.metadata = new MediaMetadata({
      title: track.title,
      artist: track.artist || "",
      album: track.album || document.title,
      artwork: [128, 256, 512].map((size) => ({ src: new URL(coverUrl(track, size), document.baseURI).href, sizes: `${size}x${size}`, type: "image/jpeg" })),
    });
  }

  function updatePosition() {
    if (!session || !session.setPositionState) return;
    const duration = Number.isFinite(audio.duration) ? audio.duration : playlist[index].duration || 0;
    if (!duration) return;
    try {
      session.setPositionState({
        duration,
        playbackRate: audio.playbackRate || 1,
        position: Math.min(Math.max(audio.currentTime, 0), duration),
      });
    } catch (error) {
      /* a position past a duration not known yet: the next update fixes it */
    }
  }

  function seekTo(seconds) {
    const duration = Number.isFinite(audio.duration) ? audio.duration : playlist[index].duration || 0;
    const target = Math.min(Math.max(seconds, 0), duration || seconds);
    if (pendingStart) pendingStart.time = target;
    else audio.currentTime = target;
    updatePosition();
  }

  if (session) {
    const actions = {
      play: () => (audio.getAttribute("src") ? play() : load(index, { play: true })),
      pause: () => audio.pause(),
      previoustrack: () => previous.click(),
      nexttrack: () => next.click(),
      seekbackward: (details) => seekTo(audio.currentTime - ((details && details.seekOffset) || SKIP_SECONDS)),
      seekforward: (details) => seekTo(audio.currentTime + ((details && details.seekOffset) || SKIP_SECONDS)),
      seekto: (details) => seekTo(details.seekTime),
    };
    for (const [action, handler] of Object.entries(actions)) {
      try {
        session.setActionHandler(action, handler);
      } catch (error) {
        /* an action this browser does not know */
      }
    }
    audio.addEventListener("play", () => (session.playbackState = "playing"));
    audio.addEventListener("pause", () => (session.playbackState = "paused"));
    for (const event of ["loadedmetadata", "durationchange", "seeked", "ratechange", "play", "pause"]) {
      audio.addEventListener(event, updatePosition);
    }
    describeForSession(playlist[index]);
  }

  try {
    const remembered = localStorage.getItem(STORAGE_KEY);
    if (remembered && !qualitySelect.disabled && [...qualitySelect.options].some((o) => o.value === remembered)) {
      qualitySelect.value = remembered;
    }
    const rememberedFormat = localStorage.getItem(FORMAT_KEY);
    if (formatSelect && [...formatSelect.options].some((o) => o.value === rememberedFormat)) {
      formatSelect.value = rememberedFormat;
    }
  } catch (error) {
    /* no storage: keep the server's default */
  }
  root.dataset.bestFormat = bestFormat; // what "Automatic" picked here (the tests read it)
  labelQualities();
  renderBadges();
})();
