"""One router module per area; ``create_app`` includes them (``scans``/``pages`` if present)."""
