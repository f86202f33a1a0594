"""Drill reports: one data object (schema v1), several renderers that compute nothing."""
