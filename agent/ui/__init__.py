"""``sweepd ui``: the read-only web dashboard (Starlette routes in app.py, the live channel in
live.py, pure shaping in data.py and importance.py, the page in static/)."""
