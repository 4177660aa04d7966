"""The view page builder: graph data (graph_data), the diff union (diff_data), the HTML page and its server
(page), and the static assets it inlines (assets/: page template, app.js, style.css, vendored dagre + licence)."""
