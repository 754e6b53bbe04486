"""Analyses over a record that run where its activations live (the device), returning only
small float32/float64 numpy results. One module per view; `analysis/` holds the pure numpy
definitions they are tested against."""
