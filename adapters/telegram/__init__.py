"""Telegram through python-telegram-bot in webhook mode (channel adapter; not built yet)."""
