"""Channel adapters: each turns its provider's format into the one contact model."""
