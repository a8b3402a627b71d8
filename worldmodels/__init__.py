"""World Models (Ha & Schmidhuber, 2018) on CarRacing, in TensorFlow 2."""

import os

# TensorFlow's C++ INFO and WARNING lines would drown the progress bars; a user's own
# setting of the variable wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
