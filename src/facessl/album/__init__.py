"""An album of unlabelled photos: its faces grouped into people, the user's names and
edits (groups.json, faces.safetensors) and the contact sheets that show them."""
