"""Real-browser tests (Chromium through Playwright): a package, so that its conftest does not shadow tests/conftest.py."""
