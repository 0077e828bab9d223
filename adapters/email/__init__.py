"""E-mail: IMAP (or LMTP) in, SMTP out. See `adapter.py` and docs/notes-email.md."""
