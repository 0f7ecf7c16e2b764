"""Server-rendered review pages (Jinja2 templates, a little JavaScript, no build step)."""
