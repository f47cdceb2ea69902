// Keeps the page current: when the receiver says incidents changed, fetch this page again
// and swap in its live sections. Without script the page is complete as it is.
(function () {
  "use strict";
  if (!window.EventSource || !window.fetch) return;
  var busy = false, again = false;

  function editing(section) {
    // Never throw away a comment being typed; that section waits for the next change.
    var active = document.activeElement;
    if (active && section.contains(active) && active.tagName === "INPUT") return true;
    return Array.prototype.some.call(section.querySelectorAll("input[type=text]"),
      function (input) { return input.value !== ""; });
  }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.pathname, {credentials: "same-origin", headers: {Accept: "text/html"}})
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (old) {
          var next = fresh.getElementById(old.id);
          if (next && !editing(old)) old.replaceWith(document.adoptNode(next));
        });
      })
      .catch(function () {})
      .finally(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  var source = new EventSource("/events");
  source.addEventListener("hello", function () {
    // (Re)connected: whatever changed while the stream was down is fetched now.
    document.documentElement.dataset.live = "on";
    refresh();
  });
  source.addEventListener("incidents", refresh);
  window.addEventListener("pagehide", function () { source.close(); });
})();
