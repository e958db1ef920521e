"""`facessl serve`: the web page and JSON API that name uploaded photos and let the user
name an album's groups and the unknown faces of uploads."""
