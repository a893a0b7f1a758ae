"""Inputs and files: BIDS selection, ages, templates, precomputed masks, images, TSV tables."""
