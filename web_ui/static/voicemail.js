// Voicemail players: a message is heard when someone presses play, not when the browser
// fetches its audio (preload, its length, range requests). On the first `play` of a player
// that has data-heard-url, post to that route with the page's CSRF token and update the page.
// Without this script the "Mark as heard" buttons still work.
(function () {
  "use strict";

  function showHeard(audio) {
    var item = audio.closest("[data-message]");
    if (!item) { return; }
    item.querySelectorAll(".js-new").forEach(function (badge) { badge.remove(); });
    var form = item.querySelector("form[data-heard-form]");
    if (form) {
      form.querySelector("input[name=heard]").value = "0";
      form.querySelector("button").textContent = "Mark as new";
    }
  }

  function markHeard(audio) {
    if (audio.dataset.heard === "1") { return; }
    audio.dataset.heard = "1";
    var body = new FormData();
    body.append("csrf_token", audio.dataset.csrf);
    body.append("heard", "1");
    fetch(audio.dataset.heardUrl, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(function (response) {
      if (response.ok) {
        showHeard(audio);
      } else {
        delete audio.dataset.heard; // try again at the next play
      }
    }).catch(function () {
      delete audio.dataset.heard;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("audio[data-heard-url]").forEach(function (audio) {
      audio.addEventListener("play", function () { markHeard(audio); });
    });
  });
})();
