"""Data helpers: the synthetic infant phantom generator and packaged data files."""
