// Live jobs and workers: poll the JSON API and redraw the two tables (no framework, no build).
(function () {
  "use strict";
  function esc(v) {
    return String(v === null || v === undefined ? "" : v).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function time(t) { return t ? new Date(t).toLocaleTimeString() : ""; }
  function fill(id, rows, cols, empty) {
    var body = document.querySelector("#" + id + " tbody");
    if (!body) return;
    body.innerHTML = rows.length ? rows.map(function (r) {
      return "<tr>" + cols.map(function (c) { return "<td>" + c(r) + "</td>"; }).join("") + "</tr>";
    }).join("") : '<tr><td colspan="' + cols.length + '" class="empty">' + empty + "</td></tr>";
  }
  function refresh() {
    Promise.all([fetch("/api/v1/jobs?limit=100").then(function (r) { return r.json(); }),
                 fetch("/api/v1/workers").then(function (r) { return r.json(); })])
      .then(function (res) {
        var jobs = res[0].items || res[0], workers = res[1];
        fill("workers", workers, [
          function (w) { return esc(w.id); }, function (w) { return esc(w.state); },
          function (w) { return esc(w.device) + (w.gpu_name ? " (" + esc(w.gpu_name) + ")" : ""); },
          function (w) { return esc((w.kinds || []).join(", ")); }, function (w) { return esc(w.current_job_id); },
          function (w) { return time(w.last_seen); }], "No workers.");
        fill("jobs", jobs, [
          function (j) { return esc(j.id); }, function (j) { return esc(j.kind); },
          function (j) { return '<span class="state ' + esc(j.state) + '">' + esc(j.state) + "</span>"; },
          function (j) { return esc((j.payload || {}).ref); },
          function (j) { return esc(j.attempt) + "/" + esc(j.max_attempts); },
          function (j) { return j.progress ? esc(JSON.stringify(j.progress)) : ""; },
          function (j) { return esc(j.worker_id); }, function (j) { return esc(j.error); },
          function (j) { return time(j.created_at); }], "No jobs.");
        document.getElementById("updated").textContent = "Updated " + new Date().toLocaleTimeString();
      })
      .catch(function () { document.getElementById("updated").textContent = "(server unreachable)"; });
  }
  setInterval(refresh, 2000);
})();
