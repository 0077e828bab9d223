"""Phone through Twilio Voice: queue, callback requests (channel adapter; not built yet)."""
