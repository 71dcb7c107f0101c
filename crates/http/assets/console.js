// Tenantry console: small enhancements over plain HTML forms. Every action works without this
// script; with it, dangerous forms ask first, the invite form opens as a dialog, secrets copy
// with one click, and the monitors pages follow status changes live (Server-Sent Events).
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) event.preventDefault();
});

document.addEventListener("click", (event) => {
  const copy = event.target.closest("[data-copy]");
  if (copy) {
    const source = document.getElementById(copy.getAttribute("data-copy"));
    if (source && navigator.clipboard) {
      navigator.clipboard.writeText(source.textContent.trim()).then(() => { copy.textContent = "Copied"; });
    }
    return;
  }
  const opener = event.target.closest("[data-dialog]");
  if (opener) {
    const dialog = document.getElementById(opener.getAttribute("data-dialog"));
    if (dialog && typeof dialog.showModal === "function") {
      event.preventDefault();
      dialog.showModal();
      const first = dialog.querySelector("input, select");
      if (first) first.focus();
    }
    return;
  }
  const closer = event.target.closest("[data-close]");
  if (closer) {
    const dialog = closer.closest("dialog");
    if (dialog) { event.preventDefault(); dialog.close(); }
  }
});

// Closing the organization switcher with Escape, and when focus leaves it.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  document.querySelectorAll("details.switcher[open]").forEach((d) => {
    d.removeAttribute("open");
    d.querySelector("summary").focus();
  });
});

// Live monitor status: the page names its organization's event stream.
(function live() {
  const root = document.querySelector("[data-events]");
  if (!root || typeof EventSource !== "function") return;
  const source = new EventSource(root.getAttribute("data-events"));
  source.addEventListener("monitor", (event) => {
    const change = JSON.parse(event.data);
    document.querySelectorAll('[data-monitor="' + change.id + '"]').forEach((row) => {
      const status = row.querySelector(".status");
      if (status) {
        status.className = "status status-" + change.status;
        status.setAttribute("data-status", change.status);
        const word = status.querySelector(".word");
        if (word) word.textContent = change.status;
      }
      const checked = row.querySelector("[data-field=last-checked]");
      if (checked && change.last_checked_at) checked.textContent = change.last_checked_text;
    });
    const incidents = document.querySelector("[data-incident-for='" + change.id + "']");
    if (incidents) incidents.textContent = change.incident_text;
  });
  root.setAttribute("data-live", "connected");
  source.addEventListener("open", () => root.setAttribute("data-live", "connected"));
  source.addEventListener("error", () => root.setAttribute("data-live", "reconnecting"));
})();

// On narrow screens the sections scroll sideways: keep the current one in view.
(function currentSection() {
  const current = document.querySelector("nav.sections [aria-current=page]");
  if (current && current.scrollIntoView) current.scrollIntoView({ block: "nearest", inline: "center" });
})();
