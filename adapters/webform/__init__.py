"""The web form channel: an accessible HTML form and its endpoint."""
