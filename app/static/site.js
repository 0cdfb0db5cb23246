// Behaviour shared by every page; the CSP allows no inline script or on…= handlers, so it lives here.
(function () {
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
  // Forms that destroy something (e.g. deleting a survey question) ask first.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
    });
  });
  // A page showing a running job (e.g. a paper upload) reloads itself until the job is done.
  var refresh = document.querySelector("[data-refresh]");
  if (refresh) {
    window.setTimeout(function () { window.location.reload(); }, 1000 * Number(refresh.dataset.refresh || 2));
  }
})();
