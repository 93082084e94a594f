// Frontdesk web page: small progressive enhancements. Every page works without this file.
(function () {
  "use strict";

  document.addEventListener("DOMContentLoaded", function () {
    // Bring the list of form problems into view and to the screen reader first.
    var summary = document.querySelector(".error-summary[data-focus]");
    if (summary) {
      summary.focus();
    }

    // On a phone the navigation scrolls sideways: bring the current page's entry into view.
    var current = document.querySelector(".mainnav [aria-current=page]");
    if (current) {
      var list = current.closest("ul");
      if (list && list.scrollWidth > list.clientWidth) {
        current.scrollIntoView({ block: "nearest", inline: "center" });
      }
    }

    // Ask before destructive actions (revoking a token).
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) {
          event.preventDefault();
        }
      });
    });

    // A new API token: select it all on focus so it can be copied in one go.
    document.querySelectorAll("[data-select-on-focus]").forEach(function (input) {
      input.addEventListener("focus", function () { input.select(); });
    });

    // Selects that filter a page apply at once; their button is only needed without script.
    document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
      select.addEventListener("change", function () { select.form.submit(); });
      var button = select.form.querySelector(".js-hide");
      if (button) { button.hidden = true; }
    });

    // Stop a second submit while the first is on its way (slow phone connections).
    document.querySelectorAll("form[method=post]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (event.defaultPrevented) { return; }
        if (form.dataset.sent) { event.preventDefault(); return; }
        form.dataset.sent = "1";
      });
    });
  });

  // Coming back with the browser's back button: forms may be sent again.
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form[data-sent]").forEach(function (form) {
      delete form.dataset.sent;
    });
  });
})();
