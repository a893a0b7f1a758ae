"""Tests of :mod:`infant_tissue.evaluation`."""
