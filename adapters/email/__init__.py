"""E-mail: IMAP in, SMTP out (channel adapter; not built yet)."""
