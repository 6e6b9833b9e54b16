"""The session broker fixture and topic prefix of the main test tree."""

pytest_plugins = ["tests.conftest"]
