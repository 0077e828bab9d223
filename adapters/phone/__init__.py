"""Phone through Twilio Voice: Twilio holds the call in a queue, our router picks the agent."""
