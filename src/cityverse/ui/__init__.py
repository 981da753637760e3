"""The dashboard: a map of the city's twin, served at ``/`` from bundled static files."""

from cityverse.ui.routes import routes

__all__ = ["routes"]
