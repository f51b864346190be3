"""Writes of the quality app: settings, aggregation into final labels, adjudication, gold,
crowd-label import."""
