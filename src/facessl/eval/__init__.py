"""Measuring: metrics on descriptors, label efficiency, LFW verification, the seed
experiment, and the report and plots a person reads."""
