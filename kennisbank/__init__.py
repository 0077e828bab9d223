"""The kennisbank: one source of answers for every channel ("met één mond").

Not built yet: its issue adds the articles (config/kennisbank/), Dutch full-text search, and
makes the router's topic recognition use the same search. Until then the router classifies with
the rules in config/classification.toml.
"""
