// Behaviour shared by every page; the CSP allows no inline script or on…= handlers, so it lives here.
(function () {
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
})();
