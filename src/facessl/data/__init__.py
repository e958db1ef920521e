"""Data: find LFW (or a user's photo folders), decode it once, split it by manifest."""
