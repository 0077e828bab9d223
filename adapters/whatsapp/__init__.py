"""WhatsApp through Twilio: inbound webhook, outbound replies (channel adapter; not built yet)."""
