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
  // A search box over a list of checkboxes (e.g. the 吹哨 targets) hides the options that do not match.
  document.querySelectorAll("input[data-filter]").forEach(function (input) {
    var list = document.getElementById(input.dataset.filter);
    if (!list) { return; }
    var none = input.parentElement.querySelector(".picker-none");
    input.addEventListener("input", function () {
      var needle = input.value.trim().toLowerCase();
      var shown = 0;
      list.querySelectorAll("li").forEach(function (item) {
        var match = !needle || item.textContent.toLowerCase().indexOf(needle) !== -1;
        item.hidden = !match;
        if (match) { shown += 1; }
      });
      if (none) { none.hidden = shown > 0; }
    });
  });
  // Copy-link buttons put their data-copy text on the clipboard and say so.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      if (!navigator.clipboard) { return; }
      navigator.clipboard.writeText(button.dataset.copy).then(function () {
        button.textContent = button.dataset.copied || button.textContent;
      });
    });
  });
  // A request was accepted: the drafts kept by the intake forms in this tab are no longer needed.
  if (document.querySelector("[data-clear-drafts]")) {
    try {
      Object.keys(sessionStorage).forEach(function (key) {
        if (key.indexOf("minhu-draft:") === 0) { sessionStorage.removeItem(key); }
      });
    } catch (e) { /* storage off: nothing was kept */ }
  }
  // A page showing a running job (e.g. a paper upload) reloads itself until the job is done.
  var refresh = document.querySelector("[data-refresh]");
  if (refresh) {
    window.setTimeout(function () { window.location.reload(); }, 1000 * Number(refresh.dataset.refresh || 2));
  }
})();
