"""Figures (plotly) and interactive widgets (ipywidgets) for the notebooks."""
