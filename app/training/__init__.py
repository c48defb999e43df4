"""Everything that imports Keras. Only the worker and the spec-check helper process import this package."""

import os

# Set before TensorFlow loads: its C++ start-up chatter would bury the worker's own log.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
