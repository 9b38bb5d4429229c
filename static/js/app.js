// BYOC's browser glue. Loaded as a file because the Content-Security-Policy
// allows no inline scripts.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // Every htmx request carries the session's CSRF token as a header, so
  // hx-post, hx-put, hx-patch and hx-delete need no hidden form field.
  // htmx sends requests to this origin only (selfRequestsOnly).
  document.addEventListener("htmx:configRequest", function (evt) {
    var token = csrfToken();
    if (token) {
      evt.detail.headers["X-CSRF-Token"] = token;
    }
  });
})();
