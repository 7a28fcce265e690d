"""Rendering of traces and states for people (rich tables) and machines (JSON)."""
