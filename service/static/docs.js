// Start Swagger UI on /docs (a file, not an inline script: the pages' CSP allows none).
window.addEventListener("load", function () {
  const box = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({ url: box.dataset.url, dom_id: "#swagger-ui", deepLinking: true });
});
