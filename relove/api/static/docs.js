// Starts Swagger UI on the API docs page (a file, not an inline script, so the page's CSP
// can forbid inline scripts). The spec's address comes from the page's data-spec attribute.
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.spec,
    dom_id: "#swagger-ui",
    deepLinking: true,
    tryItOutEnabled: false,
  });
});
