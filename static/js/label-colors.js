// Label chips and buttons carry their colours as data attributes (the Content-Security-Policy
// allows no style attribute in the HTML); setting them through the CSSOM is allowed.
(function () {
  "use strict";
  function paint(root) {
    root.querySelectorAll("[data-label-color]").forEach(function (el) {
      el.style.setProperty("--label-color", el.dataset.labelColor);
      if (el.dataset.labelInk) el.style.setProperty("--label-ink", el.dataset.labelInk);
    });
  }
  paint(document);
})();
