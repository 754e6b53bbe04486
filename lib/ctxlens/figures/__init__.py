"""Plotly figure builders and the offline bertviz HTML wrapper (no streamlit here)."""
