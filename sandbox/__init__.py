"""Local stand-ins for external providers, for the tests and the demo; never used in production."""
