"""Pretext tasks: turn unlabelled faces into a training signal."""
