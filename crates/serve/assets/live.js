// ferry serve: live updates of a run page over server-sent events. Each step event updates its
// row; a run, approval or answer event (or missed events) reloads the page from the server.
(function () {
  "use strict";
  var section = document.querySelector("section.run");
  if (!section || !window.EventSource) { return; }
  var run = section.getAttribute("data-run");
  var rows = {};
  document.querySelectorAll("tr[data-step]").forEach(function (tr) {
    rows[tr.getAttribute("data-step")] = tr;
  });
  var reloading = false;
  function reload() {
    if (reloading) { return; }
    reloading = true;
    setTimeout(function () { window.location.reload(); }, 300);
  }
  var source = new EventSource("/api/v1/runs/" + run + "/events");
  source.addEventListener("step", function (e) {
    var ev = JSON.parse(e.data);
    var tr = rows[ev.step];
    if (!tr) { reload(); return; }
    tr.className = "row-" + ev.state;
    var st = tr.querySelector("td.state span");
    st.className = "st " + ev.state;
    st.textContent = ev.state;
    // A manual step's answer buttons appear once it runs: the page is read again.
    if (ev.state === "running" && section.getAttribute("data-manual") === "1") { reload(); }
  });
  ["run", "approval", "answer", "lagged"].forEach(function (kind) {
    source.addEventListener(kind, reload);
  });
})();
