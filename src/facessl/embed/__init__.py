"""`facessl embed`: every face of a large folder of photos as rows of numbers, resumable
and shared between processes."""
