// Start Swagger UI on the API reference page (a file, so the page's CSP can stay strict).
document.addEventListener("DOMContentLoaded", function () {
  var target = document.getElementById("swagger-ui");
  if (!target || !window.SwaggerUIBundle) return;
  var headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
  window.SwaggerUIBundle({
    url: target.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    // Tags start folded: a person opens the part they need. (Drawing all of the
    // operations at once, past about 128 of them, left Swagger UI stopped halfway.)
    docExpansion: "none",
    // "Try it out" runs with the panel's session, which needs its CSRF token to write.
    requestInterceptor: function (request) {
      if (headers["X-CSRF-Token"]) request.headers["X-CSRF-Token"] = headers["X-CSRF-Token"];
      return request;
    },
  });
});
