"""WhatsApp through Twilio: inbound webhook, media, delivery status and replies."""
