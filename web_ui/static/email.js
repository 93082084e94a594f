// Email settings: the provider picker fills in server, port and encryption at once.
// Without this file the picker's "Fill in" button does the same through the server.
(function () {
  "use strict";

  document.addEventListener("DOMContentLoaded", function () {
    var result = document.getElementById("test-result");
    if (result && !document.querySelector(".error-summary[data-focus]")) {
      result.focus();
    }

    var picker = document.getElementById("f-preset");
    var form = document.getElementById("email-form");
    if (!picker || !form) { return; }
    var fill = document.getElementById("preset-fill");
    if (fill) { fill.hidden = true; }
    var note = document.getElementById("preset-note");

    function set(name, value) {
      var input = form.elements.namedItem(name);
      if (input && value !== "") {
        input.value = value;
        input.dispatchEvent(new Event("change", { bubbles: true }));
      }
    }

    picker.addEventListener("change", function () {
      var option = picker.options[picker.selectedIndex];
      if (!option || !option.value) {
        if (note) { note.textContent = ""; }
        return;
      }
      set("smtp_host", option.getAttribute("data-host") || "");
      set("smtp_port", option.getAttribute("data-port") || "");
      set("security", option.getAttribute("data-security") || "");
      if (note) {
        note.textContent = (option.getAttribute("data-note") || "") +
          " Check the values below, add your user name and password, then save.";
      }
      var host = form.elements.namedItem("smtp_host");
      if (host && !host.value) { host.focus(); }
    });
  });
})();
