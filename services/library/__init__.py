"""The images people keep: files and their metadata (storage.py, imaging.py), the
gallery, boards, ZIP archives, and the public showcase."""
