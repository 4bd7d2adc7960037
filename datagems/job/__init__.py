"""The job domain: its rows, records and exports (package being laid out by issue 15)."""
