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

  // ---- the chat composer: off for an unsubscribed customer, and for free text to a
  // WhatsApp customer whose 24-hour window is closed (templates are offered instead) ----
  function syncComposer() {
    var thread = document.getElementById("thread");
    var composer = document.querySelector(".chat-composer form.composer");
    if (!thread || !composer) return;
    var optedOut = !!thread.querySelector(".opted-out");
    var windowLine = document.getElementById("wa-window");
    var state = windowLine ? windowLine.dataset.window : "none";
    var channel = composer.querySelector("select[name=channel]");
    var blocked = state === "closed" && (!channel || channel.value === "whatsapp");
    composer.querySelectorAll("textarea, select, button, input").forEach(function (el) {
      el.disabled = optedOut || (blocked && el !== channel);
    });
    var attachLabel = composer.querySelector(".attach-button");
    if (attachLabel) attachLabel.setAttribute("aria-disabled", String(optedOut || blocked));
    var note = document.querySelector("[data-opted-out-note]");
    if (note) note.hidden = !optedOut;
    var windowNote = document.querySelector("[data-window-note]");
    if (windowNote) windowNote.hidden = optedOut || !blocked;
    var templates = document.querySelector("[data-templates]");
    if (templates) {
      templates.hidden = state === "none";
      // Opened once when the window is found closed; the operator may fold it again.
      if (blocked && !templates.dataset.opened) { templates.open = true; templates.dataset.opened = "1"; }
    }
  }

  // ---- attachments: uploaded at once to /api/media, sent as media_urls with the message ----
  // An English note from the API in the panel's language (/said); the English on trouble.
  function said(text) {
    if (document.documentElement.lang === "en" || !text) return Promise.resolve(text);
    return fetch("/said", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken(), Accept: "application/json" },
      body: JSON.stringify({ texts: [String(text).slice(0, 4000)] }),
    }).then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) { return body && body.texts ? body.texts[0] : text; })
      .catch(function () { return text; });
  }
  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRF-Token"]; } catch (e) { return ""; }
  }
  function showNotice(title, text, closeLabel) {
    var notices = document.getElementById("notices");
    if (!notices) return;
    var p = document.createElement("p");
    p.className = "notice notice-error";
    p.setAttribute("role", "alert");
    var strong = document.createElement("strong");
    strong.textContent = title;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "notice-close";
    close.dataset.dismiss = "";
    close.setAttribute("aria-label", closeLabel || "Close");
    close.textContent = "×";
    p.append(strong, " ", text, close);
    notices.prepend(p);
  }
  function humanSize(bytes) {
    if (bytes < 1024) return bytes + " B";
    if (bytes < 1024 * 1024) return Math.round(bytes / 1024) + " KB";
    return (bytes / 1024 / 1024).toFixed(1) + " MB";
  }
  function attachWidgets(root) {
    root.querySelectorAll("[data-attach-for]").forEach(function (widget) {
      var form = document.querySelector(widget.dataset.attachFor);
      if (!form || form.contains(widget)) return;
      (form.querySelector(".field-body") || form).appendChild(widget);
      syncRequired(form);
    });
  }
  function syncRequired(form) {
    if (!form.querySelector("[data-attach-list]")) return;
    var body = form.querySelector("textarea[name=body]");
    if (body) body.required = !form.querySelector("[data-attach-list] li"); // a file alone is a message
    syncComposer();
    // No sending while a file is still on its way up.
    var busy = !!form.querySelector("[data-attach-list] li[aria-busy=true]");
    var submit = form.querySelector("button[type=submit]");
    if (submit) {
      submit.setAttribute("aria-busy", String(busy));
      if (busy) submit.disabled = true;
    }
  }
  function attachFiles(input) {
    var widget = input.closest("[data-attach-for]");
    var form = input.form || widget.closest("form");
    var list = widget.querySelector("[data-attach-list]");
    var channel = form.querySelector("select[name=channel]");
    var whatsapp = channel && channel.value === "whatsapp";
    Array.prototype.forEach.call(input.files, function (file) {
      if (whatsapp) {
        if (list.children.length) showNotice(widget.dataset.oneFile, "", widget.dataset.closeLabel);
        list.innerHTML = "";
      } else if (list.children.length >= 10) {
        showNotice(widget.dataset.tooMany, "", widget.dataset.closeLabel);
        return;
      }
      uploadFile(widget, form, list, file);
    });
    input.value = "";
  }
  function uploadFile(widget, form, list, file) {
    var item = document.createElement("li");
    item.className = "attach-item";
    item.setAttribute("aria-busy", "true");
    var name = document.createElement("span");
    name.className = "attach-name";
    name.textContent = file.name;
    var size = document.createElement("span");
    size.className = "muted";
    size.textContent = " · " + humanSize(file.size);
    var progress = document.createElement("progress");
    progress.max = 100;
    progress.setAttribute("aria-label", widget.dataset.uploading);
    var hidden = document.createElement("input");
    hidden.type = "hidden";
    hidden.name = "media_urls";
    var remove = document.createElement("button");
    remove.type = "button";
    remove.className = "attach-remove secondary outline small";
    remove.textContent = "×";
    remove.setAttribute("aria-label", format(widget.dataset.removeLabel, { name: file.name }));
    item.append(name, size, progress, hidden, remove);
    list.appendChild(item);
    syncRequired(form);
    var request = new XMLHttpRequest();
    remove.addEventListener("click", function () { request.abort(); item.remove(); syncRequired(form); });
    request.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) progress.value = Math.round((event.loaded / event.total) * 100);
    });
    request.addEventListener("load", function () {
      var answer = {};
      try { answer = JSON.parse(request.responseText); } catch (e) { answer = {}; }
      if (request.status >= 200 && request.status < 300 && answer.url) {
        hidden.value = answer.url;
        item.dataset.contentType = answer.content_type;
        item.setAttribute("aria-busy", "false");
        progress.remove();
      } else {
        item.remove();
        var reason = answer.detail || request.statusText || String(request.status);
        said(reason).then(function (shown) {
          showNotice(widget.dataset.failedTitle, file.name + ": " + shown, widget.dataset.closeLabel);
        });
      }
      syncRequired(form);
    });
    request.addEventListener("error", function () {
      item.remove();
      showNotice(widget.dataset.failedTitle, file.name, widget.dataset.closeLabel);
      syncRequired(form);
    });
    var data = new FormData();
    data.append("file", file);
    request.open("POST", widget.dataset.uploadUrl);
    request.setRequestHeader("X-CSRF-Token", csrfToken());
    request.send(data);
  }

  // ---- WhatsApp templates: one set of variable fields per template, and a live preview ----
  var PLACEHOLDER = /\{\{\s*([A-Za-z0-9_]{1,16})\s*\}\}/g;
  function showTemplate(select) {
    select.form.querySelectorAll("fieldset[data-template]").forEach(function (set) {
      var chosen = set.dataset.template === select.value;
      set.hidden = !chosen;
      set.disabled = !chosen;
      if (chosen) previewTemplate(set);
    });
  }
  function previewTemplate(set) {
    var values = {};
    set.querySelectorAll("input[data-variable]").forEach(function (input) { values[input.dataset.variable] = input.value; });
    set.querySelector("[data-template-preview]").textContent = set.dataset.body.replace(PLACEHOLDER, function (whole, key) {
      return Object.prototype.hasOwnProperty.call(values, key) ? values[key] : whole;
    });
  }

  // ---- the image viewer: a modal dialog (Esc and the close button close it) ----
  function openViewer(opener) {
    var dialog = document.getElementById("media-viewer");
    if (!dialog) return;
    var img = dialog.querySelector("img");
    img.src = opener.dataset.viewer;
    img.alt = opener.dataset.viewerAlt || "";
    dialog.showModal();
    dialog.querySelector("[data-close-viewer]").focus();
  }

  // ---- the inbox: the open conversation's row, and the state bar's snooze time ----
  function markCurrent() {
    var list = document.getElementById("inbox-list");
    if (!list) return;
    var current = new URLSearchParams(window.location.search).get("c");
    list.querySelectorAll(".inbox-row").forEach(function (row) {
      var link = row.querySelector(".inbox-link");
      if (current && row.dataset.participant === current) link.setAttribute("aria-current", "true");
      else link.removeAttribute("aria-current");
    });
  }
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    if (!elt || !elt.matches) return;
    // Snoozing needs a time: choosing it shows the time field instead of saving at once.
    if (elt.matches("select[data-state-status]") && elt.value === "snoozed") {
      event.preventDefault();
      var bar = elt.closest(".inbox-state");
      var form = bar.querySelector("[data-snooze-form]");
      form.hidden = false;
      bar.dataset.editing = "1";
      form.querySelector("input[type=datetime-local]").focus();
      return;
    }
    // A live reload would throw away a snooze time being typed.
    if (elt.matches(".inbox-state[data-editing]") && event.detail.requestConfig.verb === "get") event.preventDefault();
  });
  // ... and so would one already under way when the typing began: its answer is dropped.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var elt = event.detail.elt;
    var config = event.detail.requestConfig;
    if (elt && elt.matches && elt.matches(".inbox-state[data-editing]") && config && config.verb === "get") {
      event.detail.shouldSwap = false;
    }
  });
  document.addEventListener("htmx:pushedIntoHistory", markCurrent);
  // The label picker lives in the state bar: a live reload would close it mid-choice.
  document.addEventListener("toggle", function (event) {
    var picker = event.target;
    if (!picker.matches || !picker.matches("details[data-label-picker]")) return;
    var bar = picker.closest(".inbox-state");
    if (!bar) return;
    if (picker.open) bar.dataset.editing = "1";
    else delete bar.dataset.editing;
  }, true);
  // Reply or Note: the pane shows the composer or the private note form.
  function composeMode(button) {
    var pane = button.closest("#inbox-pane");
    if (!pane) return;
    var note = button.dataset.composeMode === "note";
    pane.querySelectorAll("[data-compose-mode]").forEach(function (other) {
      var pressed = other === button;
      other.setAttribute("aria-pressed", String(pressed));
      other.classList.toggle("secondary", !pressed);
      other.classList.toggle("outline", !pressed);
    });
    var composer = pane.querySelector(".chat-composer");
    var form = pane.querySelector("[data-compose-panel=note]");
    if (composer) composer.hidden = note;
    if (form) form.hidden = !note;
    var field = note ? form && form.querySelector("textarea") : composer && composer.querySelector("textarea");
    if (field) field.focus();
  }

  // ---- canned answers: "/word" in the inbox composer offers them, filled in for the customer ----
  var canned = { box: null, textarea: null, start: 0, end: 0, timer: null, seq: 0, inserting: false };
  function cannedWord(textarea) {
    var caret = textarea.selectionStart;
    if (caret !== textarea.selectionEnd) return null;
    var match = /(^|\s)\/([^\s\/]*)$/.exec(textarea.value.slice(0, caret));
    if (!match) return null;
    return { start: caret - match[2].length - 1, end: caret, q: match[2] };
  }
  function closeCanned() {
    canned.seq += 1;
    clearTimeout(canned.timer);
    if (canned.box) canned.box.remove();
    canned.box = null;
    if (canned.textarea) {
      canned.textarea.setAttribute("aria-expanded", "false");
      canned.textarea.removeAttribute("aria-activedescendant");
    }
  }
  function suggestCanned(textarea) {
    var pane = textarea.closest("[data-canned-url]");
    if (!pane || canned.inserting) return;
    var word = cannedWord(textarea);
    if (!word) { closeCanned(); return; }
    canned.textarea = textarea;
    canned.start = word.start;
    canned.end = word.end;
    var seq = ++canned.seq;
    clearTimeout(canned.timer);
    canned.timer = setTimeout(function () {
      fetch(pane.dataset.cannedUrl + "?q=" + encodeURIComponent(word.q), { credentials: "same-origin", headers: { "HX-Request": "true" } })
        .then(function (answer) { return answer.ok ? answer.text() : ""; })
        .then(function (html) { if (seq === canned.seq && html) showCanned(textarea, html); });
    }, 120);
  }
  function showCanned(textarea, html) {
    if (!canned.box) {
      canned.box = document.createElement("div");
      canned.box.className = "canned-popup";
      canned.box.id = "canned-popup";
      canned.box.dataset.cannedPopup = "";
      textarea.insertAdjacentElement("afterend", canned.box);
    }
    canned.box.innerHTML = html;
    textarea.setAttribute("aria-expanded", "true");
    textarea.setAttribute("aria-controls", "canned-popup");
    markCanned(cannedOptions()[0]);
  }
  function cannedOptions() {
    return canned.box ? Array.prototype.slice.call(canned.box.querySelectorAll("[data-canned-id]")) : [];
  }
  function markCanned(chosen) {
    cannedOptions().forEach(function (option) { option.setAttribute("aria-selected", String(option === chosen)); });
    if (chosen && canned.textarea) {
      canned.textarea.setAttribute("aria-activedescendant", chosen.id);
      chosen.scrollIntoView({ block: "nearest" });
    }
  }
  function moveCanned(step) {
    var options = cannedOptions();
    if (!options.length) return;
    var at = options.findIndex(function (option) { return option.getAttribute("aria-selected") === "true"; });
    markCanned(options[(at + step + options.length) % options.length]);
  }
  function chooseCanned(option) {
    var textarea = canned.textarea;
    var text = option.dataset.text;
    textarea.value = textarea.value.slice(0, canned.start) + text + textarea.value.slice(canned.end);
    var caret = canned.start + text.length;
    closeCanned();
    textarea.focus();
    textarea.setSelectionRange(caret, caret);
    // The segment counter counts what will be sent: the filled-in text.
    canned.inserting = true;
    textarea.dispatchEvent(new Event("input", { bubbles: true }));
    canned.inserting = false;
  }
  document.addEventListener("keydown", function (event) {
    if (!canned.box || event.target !== canned.textarea) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      moveCanned(event.key === "ArrowDown" ? 1 : -1);
    } else if (event.key === "Enter" || event.key === "Tab") {
      var chosen = canned.box.querySelector("[data-canned-id][aria-selected=true]");
      if (!chosen) { closeCanned(); return; }
      event.preventDefault();
      chooseCanned(chosen);
    } else if (event.key === "Escape") {
      event.preventDefault();
      closeCanned();
    }
  });
  document.addEventListener("mousedown", function (event) {
    if (!canned.box) return;
    if (canned.box.contains(event.target)) event.preventDefault(); // the textarea keeps focus
    else if (event.target !== canned.textarea) closeCanned();
  });
  window.addEventListener("popstate", function () { setTimeout(markCurrent, 0); });

  // ---- the inbox's keyboard: j/k move through the list, e resolves, a takes it, n/r write,
  // "/" offers canned answers, "?" lists the keys. Never while typing in a field. ----
  function typing(target) {
    return target && target.closest && target.closest("input, textarea, select, [contenteditable=true]");
  }
  function moveInList(step) {
    var rows = Array.prototype.slice.call(document.querySelectorAll("#inbox-list .inbox-row .inbox-link"));
    if (!rows.length) return;
    var at = rows.findIndex(function (link) { return link.getAttribute("aria-current") === "true"; });
    var next = at < 0 ? (step > 0 ? 0 : rows.length - 1) : Math.min(Math.max(at + step, 0), rows.length - 1);
    if (next === at) return;
    // By the link's own htmx attributes (the pane, the address), not a click: a click on a
    // row the live list has just redrawn would load the whole page.
    var link = rows[next];
    htmx.ajax("GET", link.getAttribute("hx-get"), { source: link, target: "#inbox-pane", swap: "outerHTML" });
    link.scrollIntoView({ block: "nearest" });
  }
  function writeIn(mode, text) {
    var pane = document.getElementById("inbox-pane");
    var button = pane && pane.querySelector("[data-compose-mode=" + mode + "]");
    if (!button) return false;
    composeMode(button);
    if (text) {
      var field = pane.querySelector(".chat-composer textarea");
      if (!field) return false;
      field.value = text + field.value;
      field.setSelectionRange(text.length, text.length);
      field.dispatchEvent(new Event("input", { bubbles: true }));
    }
    return true;
  }
  // The state bar may be refreshing (live): the change is sent by its address, not a click.
  function changeState(state, values) {
    htmx.ajax("POST", state.getAttribute("hx-get"), { target: "#inbox-state", swap: "outerHTML", values: values });
    return true;
  }
  var shortcuts = {
    j: function () { moveInList(1); return true; },
    k: function () { moveInList(-1); return true; },
    e: function () {
      var state = document.querySelector("#inbox-pane #inbox-state");
      if (!state || state.dataset.status === "resolved" || !state.querySelector("[data-state-status]")) return false;
      return changeState(state, { status: "resolved" });
    },
    a: function () {
      var state = document.querySelector("#inbox-pane #inbox-state");
      if (!state || !state.querySelector("[data-assign-me]")) return false;
      return changeState(state, { assignee: "me" });
    },
    n: function () { return writeIn("note"); },
    r: function () { return writeIn("reply"); },
    "/": function () { return writeIn("reply", "/"); },
    "?": function () {
      var help = document.getElementById("inbox-keys");
      if (!help || help.open) return false;
      help.showModal();
      return true;
    },
  };
  document.addEventListener("keydown", function (event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (!document.querySelector(".inbox") || document.querySelector("dialog[open]")) return;
    var action = shortcuts[event.key];
    if (action && action()) event.preventDefault();
  });

  // ---- a tool's parameters: the rows write the JSON Schema into its textarea; once the
  // JSON is edited by hand, what was written wins until "write it from the rows" ----
  function paramSchema(builder) {
    var properties = {};
    var required = [];
    builder.querySelectorAll("[data-param-rows] [data-param-row]").forEach(function (row) {
      var name = row.querySelector("[data-param=name]").value.trim();
      if (!name) return;
      var property = { type: row.querySelector("[data-param=type]").value };
      var description = row.querySelector("[data-param=description]").value.trim();
      if (description) property.description = description;
      properties[name] = property;
      if (row.querySelector("[data-param=required]").checked) required.push(name);
    });
    var schema = { type: "object", properties: properties };
    if (required.length) schema.required = required;
    return schema;
  }
  function writeParams(builder) {
    if (builder.dataset.handEdited) return;
    builder.querySelector("[data-param-json]").value = JSON.stringify(paramSchema(builder), null, 2);
  }
  function handEdited(builder, edited) {
    if (edited) builder.dataset.handEdited = "1";
    else delete builder.dataset.handEdited;
    builder.querySelector("[data-param-hand-note]").hidden = !edited;
  }
  var paramRows = 0;
  function addParamRow(builder) {
    var row = builder.querySelector("template[data-param-template]").content.firstElementChild.cloneNode(true);
    paramRows += 1;
    row.querySelectorAll("[id], label[for]").forEach(function (el) {
      ["id", "for"].forEach(function (name) {
        var value = el.getAttribute(name);
        if (value) el.setAttribute(name, value.replace("__n__", "new" + paramRows));
      });
    });
    builder.querySelector("[data-param-rows]").appendChild(row);
    row.querySelector("[data-param=name]").focus();
    writeParams(builder);
  }
  function paramEvent(event) {
    var builder = event.target.closest && event.target.closest("[data-param-builder]");
    if (!builder) return false;
    if (event.target.matches("[data-param-json]")) handEdited(builder, true);
    else if (event.target.matches("[data-param]")) writeParams(builder);
    return true;
  }
  function paramClick(event) {
    var button = event.target.closest && event.target.closest("[data-param-builder] button");
    if (!button) return false;
    var builder = button.closest("[data-param-builder]");
    if (button.matches("[data-param-add]")) addParamRow(builder);
    else if (button.matches("[data-param-remove]")) { button.closest("[data-param-row]").remove(); writeParams(builder); }
    else if (button.matches("[data-param-from-rows]")) { handEdited(builder, false); writeParams(builder); }
    else return false;
    return true;
  }

  // ---- the customer's profile: where it is a column beside the thread, it is open ----
  var wideProfile = window.matchMedia("(min-width: 1200px)");
  function openProfiles(root) {
    if (!wideProfile.matches) return;
    root.querySelectorAll("details[data-profile-box]").forEach(function (box) { box.open = true; });
  }
  wideProfile.addEventListener("change", function () { openProfiles(document); });

  function enhance(root) {
    markCurrent();
    openProfiles(root);
    localTimes(root);
    scrollThreads(root);
    attachWidgets(root);
    syncComposer();
    root.querySelectorAll("textarea[data-segments]").forEach(updateCounter);
    root.querySelectorAll("select[data-template-select]").forEach(showTemplate);
  }

  // Typing into a conversation someone else owns says whose it is.
  function ownerNotice(field) {
    var pane = field.closest("#inbox-pane");
    var notice = pane && pane.querySelector("[data-owner-notice]");
    var state = pane && pane.querySelector("#inbox-state");
    if (!notice || !state) return;
    var owner = state.dataset.assignee;
    var theirs = owner && owner !== notice.dataset.me;
    notice.textContent = theirs ? notice.dataset.template.replace("%(name)s", state.dataset.assigneeName) : "";
    notice.hidden = !theirs;
  }
  document.addEventListener("input", function (event) {
    if (!event.target.matches) return;
    if (paramEvent(event)) return;
    if (event.target.matches("#inbox-pane textarea")) ownerNotice(event.target);
    if (event.target.matches("textarea[data-segments]")) updateCounter(event.target);
    if (event.target.matches("textarea[data-segments]")) suggestCanned(event.target);
    if (event.target.matches("fieldset[data-template] input[data-variable]")) previewTemplate(event.target.closest("fieldset"));
  });
  document.addEventListener("change", function (event) {
    if (!event.target.matches) return;
    if (paramEvent(event)) return;
    if (event.target.matches("select[data-autosubmit]")) event.target.form.submit();
    if (event.target.matches("select[data-template-select]")) showTemplate(event.target);
    if (event.target.matches("input[data-attach-input]")) attachFiles(event.target);
    if (event.target.matches(".chat-composer form.composer select[name=channel]")) syncComposer();
  });
  document.addEventListener("keydown", function (event) {
    // The attach "button" is a label: Enter and Space open the file picker like a button.
    var label = event.target.closest && event.target.closest(".attach-button");
    if (label && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      if (label.getAttribute("aria-disabled") !== "true") document.getElementById(label.htmlFor).click();
    }
  });
  document.addEventListener("click", function (event) {
    if (paramClick(event)) return;
    var option = event.target.closest && event.target.closest("[data-canned-popup] [data-canned-id]");
    if (option) { chooseCanned(option); return; }
    var mode = event.target.closest && event.target.closest("[data-compose-mode]");
    if (mode) { composeMode(mode); return; }
    if (event.target.closest && event.target.closest("[data-close-mentions]")) {
      document.getElementById("mention-list").innerHTML = "";
      return;
    }
    var opener = event.target.closest && event.target.closest("[data-viewer]");
    if (opener) { openViewer(opener); return; }
    var viewer = document.getElementById("media-viewer");
    if (viewer && (event.target === viewer || (event.target.closest && event.target.closest("[data-close-viewer]")))) {
      viewer.close();
      return;
    }
    var keys = event.target.closest && event.target.closest("[data-close-keys]");
    if (keys) { keys.closest("dialog").close(); return; }
    if (event.target.closest && event.target.closest("[data-open-keys]")) { shortcuts["?"](); return; }
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
      form.querySelectorAll("[data-attach-list]").forEach(function (list) { list.innerHTML = ""; });
      syncRequired(form);
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
