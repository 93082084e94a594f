/* Live part counter for texts: the rules of docs/sms.md ("Split and count rules"), the same
   as firmware_app.protocol.sms_pdu.count_text; the server shows the same sentence after a
   preview when this script does not run. */
(function () {
  "use strict";
  // GSM 03.38 default alphabet (without the escape) and its extension table (TS 23.038 6.2.1).
  var BASIC = "@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\u00c6\u00e6\u00df\u00c9 !\"#\u00a4%&'()*+,-./0123456789:;<=>?\u00a1ABCDEFGHIJKLMNOPQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7\u00bfabcdefghijklmnopqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0";
  var EXT = "\f^{}\\[~]|\u20ac";

  function chars(text) {
    // Code points; a lone surrogate counts (and is sent) as U+FFFD.
    var out = [];
    for (var i = 0; i < text.length; i++) {
      var c = text.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
        var d = text.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          out.push(text.substr(i, 2));
          i++;
          continue;
        }
      }
      out.push(c >= 0xd800 && c <= 0xdfff ? "\ufffd" : text.charAt(i));
    }
    return out;
  }

  function count(text) {
    var cs = chars(text);
    var gsm = cs.every(function (c) { return BASIC.indexOf(c) >= 0 || EXT.indexOf(c) >= 0; });
    var single = gsm ? 160 : 70;
    var multi = gsm ? 153 : 67;
    var sizes = cs.map(function (c) {
      if (gsm) return EXT.indexOf(c) >= 0 ? 2 : 1;
      return c.length;  // UTF-16 code units: an emoji counts 2
    });
    var units = sizes.reduce(function (a, b) { return a + b; }, 0);
    var parts = 1;
    var last = units;
    var perPart = single;
    if (units > single) {
      perPart = multi;
      var used = 0;
      sizes.forEach(function (size) {
        if (used + size > multi) {
          parts++;
          used = 0;
        }
        used += size;
      });
      last = used;
    }
    return { encoding: gsm ? "gsm7" : "ucs2", units: units, parts: parts,
             per_part: perPart, remaining: perPart - last };
  }

  function words(c) {
    var parts = c.parts + " part" + (c.parts === 1 ? "" : "s");
    var enc = c.encoding === "gsm7" ? "GSM-7" : "Unicode (UCS-2)";
    return parts + " \u00b7 " + c.remaining + " characters left \u00b7 " + enc;
  }

  function wire(area) {
    var out = document.getElementById(area.getAttribute("aria-describedby"));
    if (!out) return;
    var update = function () { out.textContent = words(count(area.value.trim())); };
    area.addEventListener("input", update);
    update();
    if (area.form) {  // the count is live: no need for the server's preview button
      area.form.querySelectorAll("button[value=preview]").forEach(function (b) { b.hidden = true; });
    }
  }

  window.frontdeskSmsCount = count;
  document.querySelectorAll("textarea[data-sms-text]").forEach(wire);
})();
