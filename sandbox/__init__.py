"""Local stand-ins for external providers (tests and the demo; never production)."""
