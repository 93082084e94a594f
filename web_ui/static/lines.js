// Lines page: reload the line cards every few seconds. Without script the page still works
// (reload it by hand).
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var box = document.querySelector("[data-refresh]");
    if (!box || !window.fetch) { return; }
    var url = box.getAttribute("data-refresh");
    var seconds = parseInt(box.getAttribute("data-refresh-seconds"), 10) || 5;
    window.setInterval(function () {
      if (document.hidden) { return; }
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) { box.innerHTML = html; } })
        .catch(function () {});
    }, seconds * 1000);
  });
}());
