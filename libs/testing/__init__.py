"""Hand-written fakes and fixtures shared by the services' tests (never imported by production code)."""
