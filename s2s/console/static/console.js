/* The s2s console's one script: progress without reloading the page.
   The overview polls overview.json, a source's page its runs.json, every
   2 seconds, and updates the cells in place. Plain JS, no build step. */
(function () {
  "use strict";
  var EVERY = 2000;
  var base = document.body.getAttribute("data-base") || "";

  function setText(el, text) {
    text = text === null || text === undefined ? "" : String(text);
    if (el && el.textContent !== text) { el.textContent = text; }
  }

  function cell(row, cls) { return row ? row.querySelector("." + cls) : null; }

  function attr(name, value) { return "[" + name + "=\"" + CSS.escape(String(value)) + "\"]"; }

  function link(href, text) {
    var a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
  }

  function poll(url, apply) {
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) {
          if (r.status === 401) { window.location.reload(); return null; }
          return r.ok ? r.json() : null;
        })
        .then(function (data) { if (data) { apply(data); } })
        .catch(function () { /* the next tick tries again */ })
        .then(function () { window.setTimeout(tick, EVERY); });
    }
    window.setTimeout(tick, EVERY);
  }

  function clientUrl(code) { return base + "/clients/" + encodeURIComponent(code); }

  function applyOverview(data) {
    (data.streams || []).forEach(function (s) {
      var row = document.querySelector("#overview tr" + attr("data-client", s.client) +
        attr("data-source", s.source) + attr("data-stream", s.stream));
      if (!row) { return; }
      setText(cell(row, "schedule"), s.schedule);
      setText(cell(row, "paused"), s.paused);
      setText(cell(row, "last-run-status"), s.last_run_status);
      setText(cell(row, "last-run-counts"), s.last_run_counts);
      setText(cell(row, "running"), s.running);
      var last = cell(row, "last-run");
      if (last && s.last_run_id && last.textContent !== "run " + s.last_run_id) {
        last.replaceChildren(link(clientUrl(s.client) + "/runs/" + s.last_run_id, "run " + s.last_run_id));
      }
    });
    Object.keys(data.open_letters || {}).forEach(function (code) {
      setText(cell(document.querySelector("#open-letters li" + attr("data-client", code)), "count"),
        data.open_letters[code]);
    });
    (data.channels || []).forEach(function (c) {
      var row = document.querySelector("#channels tr" + attr("data-client", c.client) +
        attr("data-channel", c.channel));
      ["paused", "waiting", "refused"].forEach(function (k) { setText(cell(row, k), c[k]); });
      setText(cell(row, "last-push-status"), c.last_push_status);
    });
    Object.keys(data.queues || {}).forEach(function (q) {
      var n = data.queues[q];
      setText(cell(document.querySelector("#queues li" + attr("data-queue", q)), "depth"),
        n === null ? "?" : n);
    });
    var workers = document.querySelector("#workers");
    if (workers) {
      var names = data.workers ? Object.keys(data.workers) : [];
      setText(workers.querySelector(".count"), data.workers ? names.length : "unknown");
      var list = workers.querySelector("ul");
      var items = names.map(function (name) {
        var li = document.createElement("li");
        li.setAttribute("data-worker", name);
        var n = document.createElement("span"); n.className = "name"; n.textContent = name;
        var q = document.createElement("span"); q.className = "queues";
        q.textContent = data.workers[name].join(", ");
        li.append(n, " ", q);
        return li;
      });
      if (list && list.children.length !== items.length) { list.replaceChildren.apply(list, items); }
    }
  }

  function runRow(table, run) {
    var client = table.getAttribute("data-client");
    var tr = document.createElement("tr");
    tr.setAttribute("data-run-id", run.id);
    var first = document.createElement("td");
    first.setAttribute("data-label", "Run");
    first.append(link(clientUrl(client) + "/runs/" + run.id, String(run.id)));
    tr.append(first);
    var classes = ["stream", "run-status"].concat(Object.keys(run.counts).map(function (n) {
      return "count-" + n;
    }), ["progress", "started", "error"]);
    classes.forEach(function (cls) {
      var td = document.createElement("td");
      td.className = cls;
      td.setAttribute("data-label", cls.replace("count-", "").replace("run-", ""));
      tr.append(td);
    });
    return tr;
  }

  function applyRuns(table) {
    return function (data) {
      var body = table.querySelector("tbody");
      (data.runs || []).slice().reverse().forEach(function (run) {
        var row = body.querySelector("tr" + attr("data-run-id", run.id));
        if (!row) { row = runRow(table, run); body.insertBefore(row, body.firstChild); }
        setText(cell(row, "stream"), run.stream);
        setText(cell(row, "run-status"), run.status);
        Object.keys(run.counts).forEach(function (n) { setText(cell(row, "count-" + n), run.counts[n]); });
        setText(cell(row, "progress"), run.progress);
        setText(cell(row, "started"), run.created_at);
        setText(cell(row, "error"), run.error);
      });
    };
  }

  var page = document.body.getAttribute("data-page");
  if (page === "overview") { poll(base + "/overview.json", applyOverview); }
  var runs = document.querySelector("#runs[data-poll]");
  if (runs) { poll(runs.getAttribute("data-poll"), applyRuns(runs)); }
})();
