"""Tests of :mod:`infant_tissue.group`, one file per module."""
