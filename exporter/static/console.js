// Live updates: run progress in the header; when a run finishes or the config is reloaded,
// this page is fetched again and its live sections swapped in. The search box filters the
// grid as you type. Without script every page is complete as it is.
(function () {
  "use strict";
  var progress = document.getElementById("progress");
  var search = document.querySelector("input[type=search]");
  if (search) {
    search.addEventListener("input", function () {
      var q = search.value.trim().toLowerCase();
      document.querySelectorAll(".grid li.vessel").forEach(function (li) {
        li.hidden = q !== "" && li.querySelector(".name").textContent.toLowerCase().indexOf(q) < 0;
      });
    });
  }
  if (!window.EventSource || !window.fetch) return;
  var busy = false, again = false;

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.pathname + location.search, {headers: {Accept: "text/html"}})
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (old) {
          var next = fresh.getElementById(old.id);
          if (next) old.replaceWith(document.adoptNode(next));
        });
        if (search && search.value) search.dispatchEvent(new Event("input"));
      })
      .catch(function () {})
      .finally(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  function data(event) {
    try { return JSON.parse(event.data); } catch (e) { return {}; }
  }

  var source = new EventSource("/api/v1/events");
  var connected = false;
  source.addEventListener("hello", function () {
    document.documentElement.dataset.live = "on";
    if (connected) refresh();  // reconnected: catch up on what changed meanwhile
    connected = true;
  });
  source.addEventListener("error", function () {
    document.documentElement.dataset.live = "off";
  });
  source.addEventListener("run_started", function (event) {
    progress.textContent = "collecting: 0 / " + data(event).total + " vessels";
  });
  source.addEventListener("vessel_collected", function (event) {
    var d = data(event);
    progress.textContent = "collecting: " + d.done + " / " + d.total + " vessels";
    progress.dataset.done = d.done;
    progress.dataset.total = d.total;
  });
  source.addEventListener("run_finished", function (event) {
    var d = data(event);
    progress.textContent = "last run " + d.result + ": " + d.ok + " answered, " + d.failed + " failed";
    refresh();
  });
  source.addEventListener("config_reloaded", refresh);
  source.addEventListener("reset", refresh);
  window.addEventListener("pagehide", function () { source.close(); });
})();
