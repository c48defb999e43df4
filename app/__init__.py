"""Epochly: train Keras models over HTTP."""
