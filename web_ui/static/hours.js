// Opening hours pages: small conveniences. Every form works without this file.
(function () {
  "use strict";

  document.addEventListener("DOMContentLoaded", function () {
    // The override's "until" time matters only for the "until a date and time" choices.
    var form = document.querySelector(".override-form");
    if (form) {
      var until = form.querySelector("[data-until]");
      var sync = function () {
        var picked = form.querySelector("input[name=choice]:checked");
        var timed = picked && /_time$/.test(picked.value);
        until.hidden = !timed;
        until.querySelector("input").required = !!timed;
      };
      form.querySelectorAll("input[name=choice]").forEach(function (radio) {
        radio.addEventListener("change", sync);
      });
      sync();
    }

    // Removing a row, an interval or a key redraws the form: keep the place on the page.
    var key = "frontdesk-scroll:" + location.pathname;
    var saved = sessionStorage.getItem(key);
    if (saved !== null && !document.querySelector(".error-summary")) {
      window.scrollTo(0, parseInt(saved, 10) || 0);
    }
    sessionStorage.removeItem(key);
    document.querySelectorAll("button[name=action]").forEach(function (button) {
      if (/^(add|remove|preset):/.test(button.value)) {
        button.addEventListener("click", function () {
          sessionStorage.setItem(key, String(window.scrollY));
        });
      }
    });
  });
})();
