// Keeps the list live: when /events says something changed (and every 10
// seconds for the times), the list is fetched again, rendered and escaped
// by the server, and put in place. Without JavaScript the page is whole
// as served.
(function () {
  var main = document.getElementById("targets");
  if (!main || !window.EventSource || !window.fetch) return;
  var busy = false, again = false, last = Date.now();
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    var query = location.search ? location.search + "&" : "?";
    fetch(location.pathname + query + "fragment=1", { cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) main.innerHTML = html; })
      .catch(function () {})
      .then(function () {
        busy = false;
        last = Date.now();
        if (again) { again = false; refresh(); }
      });
  }
  new EventSource("/events").addEventListener("change", refresh);
  setInterval(function () { if (Date.now() - last >= 10000) refresh(); }, 2000);
})();
