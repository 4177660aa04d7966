"""Helpers shared by the model-level conversion verbs (to-fp16, retype, externalize, merge, ...)."""
