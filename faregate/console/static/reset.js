// A reset link carries its token after "#", which the browser never sends to the server:
// move it into the form and out of the address bar.
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  const field = document.getElementById("reset-token");
  if (!field) return;
  const token = window.location.hash.slice(1);
  if (token) {
    field.value = token;
    history.replaceState(null, "", window.location.pathname);
  } else if (!field.value) {
    document.getElementById("reset-missing").hidden = false;
  }
});
