"""Evaluate and predict on trained models. Keras runs in a warm, spawned helper process (helper.py,
driven by pool.py); everything else here is imported by the API and never loads TensorFlow."""
