"""Local stand-ins for external providers (tests and the demo only, never production)."""
