"""facessl: personalised face classification with self-supervised learning."""

__version__ = "0.1.0"
