// Local times with a relative hint, a single submit per action form, the
// live log kept scrolled to its end, and live parts that poll less while
// nothing changes. The pages work without it (live parts then ask at every tick).
(function () {
  "use strict";
  const units = [["day", 86400], ["h", 3600], ["min", 60]];

  function relative(date) {
    const seconds = Math.round((Date.now() - date.getTime()) / 1000);
    const ahead = seconds < 0;
    const abs = Math.abs(seconds);
    if (abs < 45) return ahead ? "in a moment" : "just now";
    for (const [name, size] of units) {
      if (abs >= size) {
        const n = Math.floor(abs / size);
        const label = name === "day" ? (n === 1 ? "day" : "days") : name;
        return ahead ? `in ${n} ${label}` : `${n} ${label} ago`;
      }
    }
    return "";
  }

  function localise(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      const date = new Date(el.getAttribute("datetime"));
      if (isNaN(date)) return;
      const local = date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
      el.textContent = `${local} (${relative(date)})`;
    });
  }

  // A log the reader scrolled up in stays where they left it across live
  // updates; one left at its end follows the new lines.
  const readingAt = {};

  function rememberScroll() {
    document.querySelectorAll(".log").forEach(function (box) {
      const pre = box.querySelector("pre");
      if (!pre) return;
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
      readingAt[box.id] = atEnd ? null : pre.scrollTop;
    });
  }

  function scrollLogs(root) {
    root.querySelectorAll(".log").forEach(function (box) {
      const pre = box.querySelector("pre");
      if (!pre) return;
      const kept = readingAt[box.id];
      pre.scrollTop = kept === undefined || kept === null ? pre.scrollHeight : kept;
    });
  }

  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!form.matches("form[data-once]")) return;
    if (form.dataset.sent) { event.preventDefault(); return; }
    form.dataset.sent = "1";
    // After the browser has taken the form's values, so the request still carries them.
    setTimeout(function () {
      form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; b.setAttribute("aria-busy", "true"); });
    }, 0);
  });

  // Coming back through the browser's history shows the page as it was left.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll("form[data-once]").forEach(function (form) {
      delete form.dataset.sent;
      form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = false; b.removeAttribute("aria-busy"); });
    });
  });

  // django-otp-webauthn's script announces a registered passkey; the page
  // that lists the person's devices shows it.
  document.addEventListener("otp_webauthn.register_complete", function (event) {
    const target = event.target.closest("[data-after-passkey]");
    const url = (event.detail && event.detail.response && event.detail.response.redirect_url) ||
      (target && target.dataset.afterPasskey);
    if (url) window.location.assign(url);
  });

  // A live part ticks every data-poll-every seconds (its hx-trigger asks
  // consoleLive.due at each tick). An answer that changes nothing is not
  // swapped in and doubles the wait before the next request, up to
  // data-poll-most seconds; a change brings it back to one tick. A hidden
  // tab waits the most. Without this script, every tick asks.
  const live = {};

  function waits(el) {
    const tick = Number(el.dataset.pollEvery) * 1000;
    return live[el.id] || (live[el.id] = { wait: tick, text: null, at: 0 });
  }

  window.consoleLive = {
    due: function (el) {
      const state = waits(el);
      const most = Number(el.dataset.pollMost) * 1000;
      const wait = document.hidden ? most : state.wait;
      // Half a tick early still counts: the timers do not fire on the millisecond.
      return Date.now() - state.at >= wait - Number(el.dataset.pollEvery) * 500;
    },
  };

  document.addEventListener("htmx:beforeSwap", function (event) {
    const el = event.detail.elt;
    if (!el.dataset || !el.dataset.pollMost || !event.detail.xhr) return;
    const state = waits(el);
    const text = event.detail.xhr.responseText;
    const unchanged = event.detail.xhr.status === 200 && text === state.text;
    state.at = Date.now();
    state.wait = unchanged
      ? Math.min(state.wait * 2, Number(el.dataset.pollMost) * 1000)
      : Number(el.dataset.pollEvery) * 1000;
    state.text = text;
    if (unchanged) event.detail.shouldSwap = false;
  });

  document.addEventListener("DOMContentLoaded", function () { localise(document); scrollLogs(document); });
  document.addEventListener("htmx:beforeSwap", rememberScroll);
  document.addEventListener("htmx:afterSettle", function () { localise(document); scrollLogs(document); });
  setInterval(function () { localise(document); }, 30000);
})();
