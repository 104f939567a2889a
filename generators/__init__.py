"""Simulator backends, scripted exploration policies and the Ray runner that fills episode stores."""
