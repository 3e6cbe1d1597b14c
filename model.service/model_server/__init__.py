"""A TensorFlow-Serving-compatible model server: TF Serving's flags, protocol and version policy.

Real TensorFlow inference through a SavedModel's SignatureDefs (the v1 loader TF Serving uses), the
official tensorflow-serving-api protos over gRPC, and TF Serving's REST subset. Run as
`python -m model_server` (scripts/model-server) or as /usr/bin/tensorflow_model_server in the
stand-in image.
"""

__version__ = "2.21.0"  # the TensorFlow Serving release whose protocol this follows
