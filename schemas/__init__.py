"""Pandera models, one module per source: raw text in, named rules, typed rows out."""
