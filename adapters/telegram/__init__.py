"""Telegram through python-telegram-bot in webhook mode inside our aiohttp app
(`adapters/telegram/adapter.py`); replies through the Bot API (`sender.py`)."""
