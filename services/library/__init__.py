"""The images people keep: files and their metadata, the gallery, boards, ZIP
archives, and the public showcase."""
