"""Feedback: labels that arrive after the prediction, and business metrics."""
