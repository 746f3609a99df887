"""Thin command-line layer: parse, build the config, call the layers. Heavy imports live inside commands."""
