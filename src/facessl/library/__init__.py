"""The face library: what recognition and the album share, below both of them.

The face space "default" resolved to a folder (once per command, built by `facessl prepare`
or as an announced step), the stores of an album's faces (crop and row by face id) and of
its groups (groups.json), and the rules a person's name follows.
"""
