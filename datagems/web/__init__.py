"""The web app every replica serves: JSON API, dashboard, live updates."""
