"""The simulated web interface: a single-page app. The page is a shell; a script bundle signs in
against the API and draws the sign-in form. A bundle that fails leaves the page's shell answering 200,
which is exactly what a plain HTTP check cannot see and a browser check can."""

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>CRM360</title></head>
<body>
<h1>CRM360</h1>
<div id="app">Loading...</div>
<script src="/static/app.js"></script>
</body>
</html>
"""

BUNDLE = """(async function () {
  const app = document.getElementById("app");
  const resp = await fetch("/api/health");
  if (!resp.ok) { throw new Error("API answered " + resp.status); }
  const health = await resp.json();
  app.innerHTML = '<form id="sign-in"><input id="email" name="email" type="email">' +
    '<input id="password" name="password" type="password"><button id="submit" type="submit">Sign in</button>' +
    '</form><p id="api-status">API ' + health.status + '</p>';
  document.getElementById("sign-in").addEventListener("submit", function (event) {
    event.preventDefault();
    app.innerHTML = '<p id="dashboard">Dashboard of ' + document.getElementById("email").value + '</p>';
  });
})();
"""
