// Every failed htmx request says so (templates/base.html, #htmx-error): htmx swaps only 2xx
// responses, so without this a 403 (stale CSRF token, expired rights), a 500 or a dropped
// connection would leave the page as it was, with nothing shown.
(function () {
  "use strict";
  const MAX_DETAIL = 200;

  function banner() {
    return document.getElementById("htmx-error");
  }

  function show(text) {
    const element = banner();
    if (!element) return;
    element.querySelector("[data-text]").textContent = text;
    element.hidden = false;
  }

  function detail(xhr) {
    const type = xhr.getResponseHeader("Content-Type") || "";
    const body = (xhr.responseText || "").trim();
    if (type.startsWith("text/plain")) return body.slice(0, MAX_DETAIL);
    if (type.startsWith("application/json")) {
      try {
        const parsed = JSON.parse(body);
        return String(parsed.detail || parsed.error || body).slice(0, MAX_DETAIL);
      } catch (error) {
        return body.slice(0, MAX_DETAIL);
      }
    }
    return ""; // an HTML error page: its status says enough here
  }

  function explain(status) {
    if (status === 403) return "your session expired or the page is stale — reload the page";
    if (status === 404) return "not found (deleted meanwhile?) — reload the page";
    if (status === 409) return "someone changed this meanwhile — reload the page";
    if (status === 413) return "the request is too large";
    if (status >= 500) return "the server failed — try again, or tell an admin if it keeps failing";
    return "the request was refused";
  }

  document.addEventListener("htmx:responseError", function (event) {
    const xhr = event.detail.xhr;
    const extra = detail(xhr);
    show("Request failed (" + xhr.status + "): " + explain(xhr.status) + (extra ? " · " + extra : ""));
  });

  document.addEventListener("htmx:sendError", function () {
    show("Could not reach the server — check the connection and try again.");
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    const element = banner();
    if (event.detail.successful && element) element.hidden = true;
  });

  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-htmx-error-close]")) banner().hidden = true;
  });
})();
