"""Django-free Keras training pipeline: dataset cache, model, training, evaluation, TFLite export.

Importing this package (or any of its modules) imports neither TensorFlow nor Django; TensorFlow
is imported inside the functions that need it so web processes stay light.
"""
