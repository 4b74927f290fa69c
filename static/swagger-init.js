// Starts Swagger UI (the packaged bundle under /static/swagger-ui) on #swagger-ui from its data
// attributes: a static file, so the pages that show it keep a CSP of 'self' without inline script.
window.addEventListener("DOMContentLoaded", () => {
  const el = document.getElementById("swagger-ui");
  if (!el || !window.SwaggerUIBundle) return;
  const header = el.dataset.csrfHeader;
  window.ui = window.SwaggerUIBundle({
    url: el.dataset.spec,
    domNode: el,
    deepLinking: true,
    validatorUrl: null,
    tryItOutEnabled: el.dataset.tryIt === "true",
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    requestInterceptor: (request) => {
      const token = header && document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
      if (token) request.headers[header] = token.split("=")[1];
      return request;
    },
  });
});
