"""Pure functions over arrays and analysis records (no models, no streamlit)."""
