"""The product: a classifier that names a small community or says "unknown", saved as a
safe bundle, and the enroll / predict / serve commands around it."""
