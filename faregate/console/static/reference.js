// The API reference: Swagger UI over the public document, and the code sample tabs.
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  const target = document.getElementById("swagger-ui");
  if (target && window.SwaggerUIBundle) {
    window.ui = window.SwaggerUIBundle({
      url: target.dataset.url,
      dom_id: "#swagger-ui",
      deepLinking: false,
      persistAuthorization: false,
      tryItOutEnabled: false,
    });
  }
  const tabs = document.querySelectorAll('.tabs [role="tab"]');
  tabs.forEach((tab) => {
    tab.addEventListener("click", () => {
      tabs.forEach((other) => {
        const selected = other === tab;
        other.setAttribute("aria-selected", String(selected));
        document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
      });
    });
  });
});
