"""Scanned post: PDF drop folder and upload, text layer and OCR (channel adapter; not built yet)."""
