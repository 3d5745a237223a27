// relaydesk panel behaviour: live updates, segment counters, local times, small helpers.
// Plain script, no build step; htmx does the fetching and swapping.
(function () {
  "use strict";

  var lang = document.body.dataset.lang || "en";
  // Dates follow the browser's regional format when it speaks the page's language.
  var locale = (navigator.language || "").toLowerCase().indexOf(lang) === 0 ? navigator.language : lang;

  // ---- live updates: server-sent events, falling back to polling every 3 s ----
  function startLive() {
    if (document.body.dataset.live !== "on") return;
    var indicator = document.querySelector("[data-live-indicator]");
    var changed = function () { if (window.htmx) htmx.trigger(document.body, "rd:changed"); };
    var setState = function (state) { if (indicator) indicator.dataset.state = state; };
    var poll = null;
    var startPolling = function () {
      if (poll) return;
      setState("polling");
      poll = setInterval(changed, 3000);
    };
    if (!window.EventSource) { startPolling(); return; }
    var failures = 0;
    var source = new EventSource("/live");
    source.addEventListener("open", function () { failures = 0; setState("on"); if (poll) { clearInterval(poll); poll = null; } });
    source.addEventListener("changed", changed);
    source.addEventListener("error", function () {
      failures += 1;
      setState("reconnecting");
      if (failures >= 3) startPolling();
    });
  }

  // ---- SMS segment counter (same rules as the server: GSM-7 160/153, UCS-2 70/67) ----
  function format(template, values) {
    return template.replace(/%\((\w+)\)s/g, function (_, key) { return values[key]; });
  }
  function countSegments(text, basic, extension) {
    var nonGsm = [];
    var septets = 0;
    for (var ch of text) {
      if (basic.indexOf(ch) >= 0) septets += 1;
      else if (extension.indexOf(ch) >= 0) septets += 2;
      else if (nonGsm.indexOf(ch) < 0) nonGsm.push(ch);
    }
    var encoding = nonGsm.length ? "UCS-2" : "GSM-7";
    var units = nonGsm.length ? text.length : septets; // JS strings are UTF-16 code units
    var single = nonGsm.length ? 70 : 160, multi = nonGsm.length ? 67 : 153;
    var segments = units <= single ? 1 : Math.ceil(units / multi);
    return { encoding: encoding, units: units, segments: segments, nonGsm: nonGsm };
  }
  window.relaydeskSegments = countSegments;
  function updateCounter(textarea) {
    var counter = document.getElementById(textarea.dataset.segments);
    if (!counter) return;
    var info = countSegments(textarea.value, counter.dataset.gsmBasic, counter.dataset.gsmExtension);
    counter.querySelector(".counter-text").textContent = format(counter.dataset.template, {
      chars: textarea.value.length, segments: info.segments, encoding: info.encoding,
    });
    counter.dataset.segments = info.segments;
    counter.dataset.encoding = info.encoding;
    var warning = counter.querySelector(".counter-warning");
    if (textarea.value.length > 1600) {
      warning.textContent = counter.dataset.tooLong;
      warning.hidden = false;
    } else if (info.nonGsm.length) {
      warning.textContent = format(counter.dataset.ucs2Warning, { chars: info.nonGsm.slice(0, 8).join(" ") });
      warning.hidden = false;
    } else {
      warning.hidden = true;
    }
  }

  // ---- times in the viewer's time zone: hour, then date ----
  var timeFormat = new Intl.DateTimeFormat(locale, { hour: "2-digit", minute: "2-digit" });
  var dateFormat = new Intl.DateTimeFormat(locale, { day: "2-digit", month: "2-digit", year: "numeric" });
  var fullFormat = new Intl.DateTimeFormat(locale, { dateStyle: "full", timeStyle: "long" });
  function localTimes(root) {
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      if (el.dataset.done) return;
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when)) return;
      el.innerHTML = "";
      var hour = document.createElement("span");
      hour.className = "t";
      hour.textContent = timeFormat.format(when);
      var day = document.createElement("span");
      day.className = "d";
      day.textContent = dateFormat.format(when);
      el.append(hour, " ", day);
      el.title = fullFormat.format(when);
      el.dataset.done = "1";
    });
  }

  function scrollThreads(root) {
    root.querySelectorAll("[data-scroll-bottom]").forEach(function (list) {
      list.scrollTop = list.scrollHeight;
    });
  }

  function syncOptOut(root) {
    var thread = document.getElementById("thread");
    var composer = document.querySelector(".chat-composer form");
    if (!thread || !composer) return;
    var optedOut = !!thread.querySelector(".opted-out");
    composer.querySelectorAll("textarea, select, button, input").forEach(function (el) { el.disabled = optedOut; });
    var note = document.querySelector("[data-opted-out-note]");
    if (note) note.hidden = !optedOut;
  }

  function enhance(root) {
    localTimes(root);
    scrollThreads(root);
    syncOptOut(root);
    root.querySelectorAll("textarea[data-segments]").forEach(updateCounter);
  }

  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches("textarea[data-segments]")) updateCounter(event.target);
  });
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("select[data-autosubmit]")) event.target.form.submit();
  });
  document.addEventListener("click", function (event) {
    var close = event.target.closest && event.target.closest("[data-dismiss]");
    if (close) { close.parentElement.remove(); return; }
    var copy = event.target.closest && event.target.closest("[data-copy]");
    if (copy) {
      var field = document.querySelector(copy.dataset.copy);
      var done = function () { copy.dataset.copied = "1"; copy.textContent = copy.dataset.copiedLabel || "✓"; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(done);
      } else {
        field.select();
        document.execCommand("copy");
        done();
      }
    }
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    if (form && form.matches && form.matches("form[data-reset-on-success]") && event.detail.successful) {
      form.reset();
      form.querySelectorAll("textarea[data-segments]").forEach(updateCounter);
    }
    if (form && form.matches && form.matches("form[data-reset-body]") && event.detail.successful) {
      form.querySelector("textarea").value = "";
    }
  });
  // ---- times typed in the viewer's time zone ("send later", a reminder's start) go out in UTC ----
  document.addEventListener("htmx:configRequest", function (event) {
    var form = event.detail.elt;
    if (!form || !form.querySelectorAll) return;
    form.querySelectorAll("input[data-utc-field]").forEach(function (input) {
      var when = input.value ? new Date(input.value) : null; // datetime-local: local time
      event.detail.parameters[input.dataset.utcField] = when && !isNaN(when) ? when.toISOString() : "";
    });
  });
  document.addEventListener("htmx:load", function (event) { enhance(event.detail.elt); });
  document.addEventListener("DOMContentLoaded", function () {
    enhance(document);
    startLive();
  });
})();
