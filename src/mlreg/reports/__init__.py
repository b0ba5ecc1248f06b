"""Renderings of gate results: JSON, Markdown (the PR comment) and terminal tables."""
