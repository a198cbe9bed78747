"""Versioned prompt templates (<name>.v<N>.j2) and their registry."""
