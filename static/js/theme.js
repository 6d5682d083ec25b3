// Colour mode (Bootstrap's data-bs-theme): the system's setting, or the one chosen with the
// navbar's button and remembered in this browser. Loaded in <head>, before the page is drawn,
// so a dark page never flashes light first.
(function () {
  const KEY = "mixtapes-theme";
  const MODES = ["auto", "light", "dark"];
  const LABELS = { auto: "Theme: system", light: "Theme: light", dark: "Theme: dark" };
  const system = window.matchMedia("(prefers-color-scheme: dark)");

  function chosen() {
    try {
      const stored = localStorage.getItem(KEY);
      return MODES.includes(stored) ? stored : "auto";
    } catch (error) {
      return "auto";
    }
  }

  function apply(mode) {
    const resolved = mode === "auto" ? (system.matches ? "dark" : "light") : mode;
    document.documentElement.setAttribute("data-bs-theme", resolved);
    const button = document.getElementById("theme-toggle");
    if (button) {
      button.textContent = LABELS[mode];
      button.setAttribute("aria-label", `${LABELS[mode]} (change)`);
      button.dataset.mode = mode;
    }
  }

  apply(chosen());
  system.addEventListener("change", () => apply(chosen()));
  document.addEventListener("DOMContentLoaded", () => {
    const button = document.getElementById("theme-toggle");
    if (!button) return;
    apply(chosen());
    button.addEventListener("click", () => {
      const next = MODES[(MODES.indexOf(chosen()) + 1) % MODES.length];
      try {
        localStorage.setItem(KEY, next);
      } catch (error) {
        /* private browsing: this page only */
      }
      apply(next);
    });
  });
})();
